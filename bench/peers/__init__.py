"""The systems the suite measures, each in a module of its own. A module that imports an optional package
(``pip install -e '.[bench]'``) is loaded only when asked for, and a missing package skips that system."""

from __future__ import annotations

import importlib
import importlib.util

from bench.peers.base import System

#: name -> (module, class, the packages it needs)
SYSTEMS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "jobsvc": ("bench.peers.jobsvc_app", "JobsvcSystem", ()),
    "arq-default": ("bench.peers.arq_vanilla", "ArqDefault", ()),
    "arq-tuned": ("bench.peers.arq_vanilla", "ArqTuned", ()),
    "saq": ("bench.peers.saq_app", "SaqSystem", ("saq",)),
    "taskiq": ("bench.peers.taskiq_app", "TaskiqSystem", ("taskiq", "taskiq_redis")),
    "dramatiq": ("bench.peers.dramatiq_app", "DramatiqSystem", ("dramatiq",)),
    "celery": ("bench.peers.celery_app", "CelerySystem", ("celery",)),
}
#: what ratios are taken against
BASELINE = "arq-default"


def load(name: str) -> System | str:
    """The system called `name`, or why it cannot run here."""
    module_name, class_name, packages = SYSTEMS[name]
    for package in packages:
        if importlib.util.find_spec(package) is None:
            return f"{package} is not installed (pip install -e '.[bench]')"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # installed, but broken: an incompatible mix of versions, say
        return f"cannot be imported: {exc}"
    system: System = getattr(module, class_name)()
    return system
