"""image.thumbnail end to end: submitted through the API, rendered by a real worker's process pool."""

from __future__ import annotations

import asyncio
import itertools
import struct
import time
import zlib
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq import ArqRedis
from PIL import Image

from jobs.catalogue.images import render_thumbnail, tenant_root
from jobs.engine import keys
from service.config import Settings
from tests.helpers import client_with_key, key_for, read_job, submit


@pytest.fixture
def storage(settings: Settings) -> Path:
    """The default tenant's storage root, where its jobs read and write."""
    root = tenant_root(settings.effective_storage_dir, "default")
    root.mkdir(parents=True, exist_ok=True)
    return root


def write_png(path: Path, size: tuple[int, int], mode: str = "RGB", color: Any = (30, 120, 200)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, format="PNG")


async def run_one(http: httpx.AsyncClient, run_jobs: Any, params: dict[str, Any]) -> dict[str, Any]:
    job = await submit(http, "image.thumbnail", params)
    await run_jobs()
    return (await http.get(f"/v1/jobs/{job['id']}")).json()  # type: ignore[no-any-return]


async def test_thumbnail_fits_the_box_and_keeps_the_aspect_ratio(
    http: httpx.AsyncClient, run_jobs: Any, storage: Path
) -> None:
    write_png(storage / "uploads" / "photo.png", (640, 480))

    done = await run_one(http, run_jobs, {"source": "uploads/photo.png", "width": 200, "height": 200})

    assert done["status"] == "succeeded", done["error"]
    result = done["result"]
    assert result["path"] == f"thumbnails/{done['id']}.png"
    output = storage / result["path"]
    assert result["bytes"] == output.stat().st_size
    with Image.open(output) as thumb:
        assert thumb.format == "PNG"
        assert thumb.size == (result["width"], result["height"]) == (200, 150)
    assert done["progress"] == {"current": 2, "total": 2, "message": "wrote a 200x150 png"}
    assert [p.name for p in output.parent.iterdir()] == [output.name]  # no temporary file left behind


async def test_jpeg_from_an_rgba_source_is_flattened_onto_white(
    http: httpx.AsyncClient, run_jobs: Any, storage: Path
) -> None:
    write_png(storage / "logo.png", (300, 600), mode="RGBA", color=(255, 0, 0, 128))

    done = await run_one(
        http, run_jobs, {"source": "logo.png", "width": 100, "height": 100, "format": "jpeg"}
    )

    assert done["status"] == "succeeded", done["error"]
    assert done["result"]["path"] == f"thumbnails/{done['id']}.jpg"
    with Image.open(storage / done["result"]["path"]) as thumb:
        assert (thumb.format, thumb.mode, thumb.size) == ("JPEG", "RGB", (50, 100))
        red, green, blue = thumb.getpixel((25, 50))  # type: ignore[misc]
    assert red > 240
    # half-transparent red over white, not over black
    assert 100 < green < 160
    assert 100 < blue < 160


@pytest.mark.parametrize(
    "source", ["../etc/passwd", "/etc/passwd", "a/../../x", "a\\..\\x", "a\x00.png", "."]
)
async def test_source_outside_storage_is_refused_at_submit(
    http: httpx.AsyncClient, redis: ArqRedis, source: str
) -> None:
    response = await http.post(
        "/v1/jobs", json={"type": "image.thumbnail", "params": {"source": source, "width": 10, "height": 10}}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [error["pointer"] for error in response.json()["errors"]] == ["/params/source"]
    assert await redis.zcard(keys.arq_queue("default")) == 0


async def test_unknown_params_are_refused_at_submit(http: httpx.AsyncClient, redis: ArqRedis) -> None:
    params = {"source": "a.png", "width": 10, "height": 5000, "format": "gif", "quality": 9}
    response = await http.post("/v1/jobs", json={"type": "image.thumbnail", "params": params})
    assert response.status_code == 422
    pointers = {error["pointer"] for error in response.json()["errors"]}
    assert pointers == {"/params/height", "/params/format", "/params/quality"}
    assert await redis.zcard(keys.arq_queue("default")) == 0


async def test_symlink_leading_out_of_storage_fails_for_good(
    http: httpx.AsyncClient, run_jobs: Any, storage: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside" / "secret.png"
    write_png(outside, (64, 64))
    (storage / "innocent.png").symlink_to(outside)

    done = await run_one(http, run_jobs, {"source": "innocent.png", "width": 32, "height": 32})

    assert done["status"] == "failed"
    assert done["attempts"] == 1
    assert done["error"]["type"] == "PermanentJobError"
    assert "symbolic link" in done["error"]["message"]
    assert str(outside) not in done["error"]["message"]
    assert not (storage / "thumbnails").exists()


@pytest.mark.parametrize("link", ["file", "directory"])
async def test_no_link_leads_into_another_tenants_storage(
    http: httpx.AsyncClient, run_jobs: Any, storage: Path, settings: Settings, link: str
) -> None:
    """A link inside the tenant's own root, to a file or through a directory of another tenant's, is
    not followed: each path component is opened without following links."""
    theirs = tenant_root(settings.effective_storage_dir, "globex")
    write_png(theirs / "private" / "plan.png", (64, 64))
    if link == "file":
        (storage / "plan.png").symlink_to(theirs / "private" / "plan.png")
        source = "plan.png"
    else:
        (storage / "shared").symlink_to(theirs / "private", target_is_directory=True)
        source = "shared/plan.png"

    done = await run_one(http, run_jobs, {"source": source, "width": 32, "height": 32})

    assert (done["status"], done["error"]["type"]) == ("failed", "PermanentJobError")
    assert "symbolic link" in done["error"]["message"]
    assert not (storage / "thumbnails").exists()


async def test_each_tenant_reads_and_writes_in_its_own_root(
    http: httpx.AsyncClient, app: Any, run_jobs: Any, storage: Path, settings: Settings
) -> None:
    write_png(storage / "photo.png", (64, 64))  # the default tenant's, not acme's
    created = await key_for(http, "acme", ["submit", "read"])
    async with client_with_key(app, created["key"]) as acme:
        params = {"source": "photo.png", "width": 32, "height": 32}
        refused = (await acme.post("/v1/jobs", json={"type": "image.thumbnail", "params": params})).json()
        await run_jobs()
        assert (await read_job(acme, refused["id"]))["error"][
            "message"
        ] == "source 'photo.png' does not exist"
        acme_root = tenant_root(settings.effective_storage_dir, "acme")
        write_png(acme_root / "photo.png", (64, 64))
        made = (await acme.post("/v1/jobs", json={"type": "image.thumbnail", "params": params})).json()
        await run_jobs()
        done = await read_job(acme, made["id"])
    assert done["status"] == "succeeded", done["error"]
    assert (acme_root / done["result"]["path"]).is_file()
    assert not (storage / "thumbnails").exists()


async def test_missing_source_fails_for_good(http: httpx.AsyncClient, run_jobs: Any, storage: Path) -> None:
    done = await run_one(http, run_jobs, {"source": "nowhere.png", "width": 32, "height": 32})
    assert done["status"] == "failed"
    assert done["error"] == {"type": "PermanentJobError", "message": "source 'nowhere.png' does not exist"}


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels and holds none: what a decompression bomb looks like
    to a reader that checks the header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


async def test_corrupt_and_oversized_images_fail_for_good(
    http: httpx.AsyncClient, run_jobs: Any, storage: Path
) -> None:
    write_png(storage / "whole.png", (400, 300), color=(1, 2, 3))
    files = {
        "garbage.png": b"this is not an image\n" * 100,
        "truncated.png": (storage / "whole.png").read_bytes()[:-200],
        "over-our-limit.png": png_header_only(9_000, 9_000),  # 81 Mpx: ours refuses it
        "over-pillow-warning.png": png_header_only(10_000, 10_000),  # Pillow warns
        "over-pillow-limit.png": png_header_only(20_000, 20_000),  # Pillow refuses
    }
    jobs = {}
    for name, content in files.items():
        (storage / name).write_bytes(content)
        jobs[name] = await submit(http, "image.thumbnail", {"source": name, "width": 32, "height": 32})

    await run_jobs()

    for name, job in jobs.items():
        done = (await http.get(f"/v1/jobs/{job['id']}")).json()
        assert (done["status"], done["attempts"], done["error"]["type"]) == (
            "failed",
            1,
            "PermanentJobError",
        ), name
        if name.startswith("over-"):
            assert "pixels" in done["error"]["message"], done["error"]
    assert not (storage / "thumbnails").exists()


def epoch_s(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()


async def test_rendering_never_blocks_the_event_loop(
    http: httpx.AsyncClient, run_jobs: Any, storage: Path, tmp_path: Path
) -> None:
    gradient = Image.linear_gradient("L").resize((6000, 4000))
    big = Image.merge("RGB", (gradient, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT), gradient))
    big.save(storage / "big.png", compress_level=1)
    # what the loop would stall for if Pillow ran on it
    started = time.perf_counter()
    render_thumbnail(storage, "big.png", tmp_path / "inline.png", 320, 320, "png")
    inline_s = time.perf_counter() - started

    ticks: list[float] = []

    async def tick() -> None:
        while True:
            ticks.append(time.time())
            await asyncio.sleep(0.01)

    job = await submit(http, "image.thumbnail", {"source": "big.png", "width": 320, "height": 320})
    ticker = asyncio.create_task(tick())
    try:
        await run_jobs()
    finally:
        ticker.cancel()
    done = (await http.get(f"/v1/jobs/{job['id']}")).json()

    assert done["status"] == "succeeded", done["error"]
    assert (done["result"]["width"], done["result"]["height"]) == (320, 213)
    start, end = epoch_s(done["started_at"]), epoch_s(done["finished_at"])
    assert end - start >= inline_s / 2  # the job did the rendering while the ticks were counted
    # gaps wholly inside the run: worker start-up and shut-down around it are not the render
    gaps = [
        later - earlier for earlier, later in itertools.pairwise(ticks) if earlier >= start and later <= end
    ]
    assert gaps
    assert max(gaps) < inline_s / 4, (max(gaps), inline_s)
