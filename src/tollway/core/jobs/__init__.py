"""Async media jobs: queueing with a hold, the runner, the job table."""
