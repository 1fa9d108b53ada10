"""The uvicorn target: ``uvicorn service.main:app``. The only module that builds the app at import."""

from service.api.app import create_app

app = create_app()
