"""The jobsvc API service: a FastAPI app in front of ARQ."""
