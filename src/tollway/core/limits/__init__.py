"""Rate limits: the limiter (in-process and Redis) and the gate that applies them to a request."""
