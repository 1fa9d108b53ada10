"""The HTTP API: the FastAPI app, its routes, dependencies, errors and hardening."""
