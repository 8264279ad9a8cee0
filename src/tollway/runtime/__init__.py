"""The process: the app factory, services (the one composition root), the server, hot reload, maintenance."""
