"""Chat and embeddings: the pipeline, chat plans, streaming, routing, request schemas."""
