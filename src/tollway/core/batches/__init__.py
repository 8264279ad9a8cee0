"""Files and batches: the OpenAI Files and Batch APIs on the job runner and the one charge path."""
