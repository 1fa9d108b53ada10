"""The uvicorn target: ``uvicorn service.main:app``. The only module that builds the app at import."""

from service.api.app import create_app
from service.collector import freeze_startup_objects
from service.config import get_settings
from service.logs import configure_logging

settings = get_settings()
# at import, not only at startup: uvicorn logs its first lines between importing the app and its lifespan
configure_logging(settings)
app = create_app(settings)
freeze_startup_objects()
