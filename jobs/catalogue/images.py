"""``image.thumbnail``: a thumbnail of an image in the tenant's storage, rendered in the process pool.

Each tenant has a storage root of its own, ``<storage dir>/tenants/<tenant>/``: its sources are read and
its thumbnails written there, never in another tenant's. A source is opened one path component at a
time, each relative to the directory opened before it and without following symbolic links
(``open_inside``), so no link, whenever it was planted, leads a job out of its tenant's root.

Pillow decodes and encodes in worker processes (``ctx["process_pool"]``), never on the event loop.
The functions that run there are module-level and take and return plain values, so they pickle; they
raise only :class:`PermanentJobError` (message-only, so it crosses the process boundary intact) for
images that cannot be used, and let anything else (a full disk) fail the job as it is.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import warnings
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from jobs.context import Ctx
from jobs.definition import job_type
from jobs.errors import PermanentJobError
from jobs.limits import Limit

ImageFormat = Literal["png", "jpeg", "webp"]

_IN_NAME = r"[^/\\\x00]"
#: a path segment other than "", "." and ".."
_NAMED = rf"(?:[^/\\\x00.]{_IN_NAME}*|\.[^/\\\x00.]{_IN_NAME}*|\.\.{_IN_NAME}+)"
#: what ``ThumbnailParams._inside_storage`` accepts: relative, no `..` segment, naming something
SOURCE_PATTERN = rf"^(?:\.(?:/\.?)*/)?{_NAMED}(?:/(?:{_NAMED}|\.?))*$"

#: Larger sources are refused before decoding: 80 megapixels is 320 MB as RGBA. Below Pillow's own
#: bomb threshold, so Pillow's DecompressionBombWarning never fires for an image we accept.
MAX_SOURCE_PIXELS = 80_000_000
THUMBNAILS_DIR = "thumbnails"
#: under the storage directory, one root per tenant
TENANTS_DIR = "tenants"
EXTENSIONS: dict[ImageFormat, str] = {"png": "png", "jpeg": "jpg", "webp": "webp"}
PIL_FORMATS: dict[ImageFormat, str] = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
SAVE_OPTIONS: dict[ImageFormat, dict[str, int | bool]] = {
    "png": {},
    "jpeg": {"quality": 85, "optimize": True},
    "webp": {"quality": 85},
}
#: What each output format stores as is; anything else is converted first.
OUTPUT_MODES: dict[ImageFormat, tuple[str, ...]] = {
    "png": ("L", "LA", "RGB", "RGBA"),
    "jpeg": ("L", "RGB"),
    "webp": ("RGB", "RGBA"),
}
#: What decoding can fail with on a corrupt, truncated or unsupported file.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


class ThumbnailParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        min_length=1,
        max_length=1024,
        description="The image, as a path relative to the tenant's storage root, "
        "<storage dir>/tenants/<tenant>/ (no `..`, no backslashes; symbolic links are not followed).",
        examples=["uploads/cat.png"],
        json_schema_extra={"pattern": SOURCE_PATTERN},
    )
    width: int = Field(ge=1, le=4096, description="The box the thumbnail fits in; aspect ratio is kept.")
    height: int = Field(ge=1, le=4096)
    format: ImageFormat = Field("png", description="The output format.")

    @field_validator("source")
    @classmethod
    def _inside_storage(cls, source: str) -> str:
        if "\x00" in source or "\\" in source:
            raise ValueError("must not contain NUL or backslashes")
        path = PurePosixPath(source)
        if path.is_absolute():
            raise ValueError("must be relative to the storage directory")
        if ".." in path.parts:
            raise ValueError("must not contain `..` components")
        if not path.parts:
            raise ValueError("must name a file")
        return source


class ThumbnailResult(BaseModel):
    path: str = Field(description="The thumbnail, relative to the tenant's storage root.")
    width: int
    height: int
    bytes: int = Field(description="The thumbnail's file size.")


@job_type(
    "image.thumbnail",
    description="Renders a thumbnail of an image in the tenant's storage, keeping its aspect ratio.",
    timeout_s=120,
    limit=Limit(concurrency=2),  # CPU-heavy: at most 2 render at once across all workers
)
async def thumbnail(ctx: Ctx, params: ThumbnailParams) -> ThumbnailResult:
    root = tenant_root(ctx["config"].storage_dir, ctx["tenant"])
    name = f"{ctx['job_id']}.{EXTENSIONS[params.format]}"
    if PurePosixPath(name).name != name or name.startswith("."):  # ids are checked by the API; be sure
        raise PermanentJobError("job id is not usable as a file name")
    destination = root / THUMBNAILS_DIR / name
    pool = ctx["process_pool"]

    src_width, src_height = await pool.run(probe_image, root, params.source)
    await ctx["progress"].report(1, 2, f"read a {src_width}x{src_height} image")
    width, height, size = await pool.run(
        render_thumbnail, root, params.source, destination, params.width, params.height, params.format
    )
    await ctx["progress"].report(2, 2, f"wrote a {width}x{height} {params.format}")
    return ThumbnailResult(
        path=destination.relative_to(root).as_posix(), width=width, height=height, bytes=size
    )


def tenant_root(storage_dir: Path, tenant: str) -> Path:
    """The tenant's own storage root (tenant names are checked at the API: no separators, no dots)."""
    if PurePosixPath(tenant).name != tenant or tenant.startswith("."):
        raise PermanentJobError("tenant name is not usable as a directory name")
    return storage_dir / TENANTS_DIR / tenant


def open_inside(root: Path, source: str) -> BinaryIO:
    """``source`` under ``root``, opened for reading without following a symbolic link anywhere on the
    way (each directory opened relative to the one before, ``O_NOFOLLOW``); refused when a component is
    a link, missing, or the end is not a regular file."""
    parts = [part for part in PurePosixPath(source).parts if part not in ("", ".")]
    if not parts or ".." in parts:
        raise PermanentJobError(f"source {source!r} does not name a file in the tenant's storage")
    try:
        directory = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        raise PermanentJobError(f"source {source!r} does not exist") from None
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=directory)
            os.close(directory)
            directory = inner
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=directory)
    except FileNotFoundError:
        raise PermanentJobError(f"source {source!r} does not exist") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise PermanentJobError(
                f"source {source!r} is or passes through a symbolic link, or a file where a directory "
                "should be; links are not followed in storage"
            ) from None
        raise
    finally:
        os.close(directory)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise PermanentJobError(f"source {source!r} is not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _open(file: BinaryIO) -> Image.Image:
    """Open (reading the header only) and refuse decompression bombs before any pixel is decoded."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(file)
        except UnidentifiedImageError:
            raise PermanentJobError("not an image in a format Pillow reads") from None
        except (*DECODE_ERRORS, Image.DecompressionBombWarning) as exc:
            raise PermanentJobError(f"not a readable image: {_describe(exc)}") from None
    if image.width * image.height > MAX_SOURCE_PIXELS:
        image.close()
        raise PermanentJobError(f"image of {image.width}x{image.height} exceeds {MAX_SOURCE_PIXELS} pixels")
    return image


def _describe(exc: BaseException) -> str:
    """The error without the server's absolute paths, which OSError puts into its message."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return exc.strerror or type(exc).__name__
    return str(exc) or type(exc).__name__


def probe_image(root: Path, source: str) -> tuple[int, int]:
    """Runs in the process pool: check ``source`` (under ``root``) is an intact image of sane size;
    returns its size."""
    with open_inside(root, source) as file, _open(file) as image:
        try:
            image.verify()
        except DECODE_ERRORS as exc:
            raise PermanentJobError(f"corrupt image: {_describe(exc)}") from None
        return image.width, image.height


def render_thumbnail(
    root: Path, source: str, destination: Path, width: int, height: int, fmt: ImageFormat
) -> tuple[int, int, int]:
    """Runs in the process pool: write a thumbnail of ``source`` (under ``root``) fitting ``width`` x
    ``height`` to ``destination`` atomically. Returns the thumbnail's width, height and file size."""
    with open_inside(root, source) as file, _open(file) as image:
        try:
            # JPEG decodes straight at a reduced scale; a rotated photo may swap the box's sides.
            side = 2 * max(width, height)
            image.draft(None, (side, side))
            ImageOps.exif_transpose(image, in_place=True)  # loads the pixels
            picture = image
            if picture.mode not in ("L", "LA", "RGB", "RGBA"):
                picture = picture.convert("RGBA" if picture.has_transparency_data else "RGB")
            picture.thumbnail((width, height))
        except DECODE_ERRORS as exc:
            raise PermanentJobError(f"cannot decode image: {_describe(exc)}") from None
        # still inside `with`: closing the image also discards its pixels, which `picture` may share
        picture = _output_mode(picture, fmt)
        destination.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(picture, destination, fmt)
        return picture.width, picture.height, destination.stat().st_size


def _output_mode(picture: Image.Image, fmt: ImageFormat) -> Image.Image:
    if picture.mode in OUTPUT_MODES[fmt]:
        return picture
    if fmt == "jpeg":  # no alpha in JPEG: flatten onto white rather than let transparent pixels turn black
        rgba = picture.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return picture.convert("RGBA" if "A" in picture.mode else "RGB")


def _write_atomically(picture: Image.Image, destination: Path, fmt: ImageFormat) -> None:
    """Readers see the old file or the whole new one, never a partial one."""
    temporary = destination.with_name(f".{destination.name}.{secrets.token_hex(8)}.tmp")
    # os.open rather than mkstemp: the file gets the usual permissions (umask), not 0600
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            picture.save(file, format=PIL_FORMATS[fmt], **SAVE_OPTIONS[fmt])
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, destination)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
