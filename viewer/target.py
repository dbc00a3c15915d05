"""Where a recording goes: ``native`` (the desktop viewer), ``web`` (the bundled web viewer, served on
loopback) or ``save:PATH.rrd`` (a file, opened later with ``rerun PATH.rrd`` or ``thalamus view``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

INSTALL_HINT = "the viewer needs rerun-sdk: pip install 'thalamus[view]' (or pip install rerun-sdk)"


class ViewError(ValueError):
    """A ``--view`` target that cannot be used; the message says why and what to give instead."""


@dataclass(frozen=True)
class ViewTarget:
    """One parsed ``--view`` value, and the loopback port ``web``'s page is served on (0: any free one)."""

    kind: str  # native | web | save
    path: Path | None = None  # save: the .rrd file
    web_port: int = 0

    @staticmethod
    def parse(text: str) -> ViewTarget:
        """``native``, ``web`` or ``save:PATH.rrd``; anything else is a :class:`ViewError`."""
        kind, _, rest = text.partition(":")
        if kind in ("native", "web") and not rest:
            return ViewTarget(kind)
        if kind == "save" and rest:
            try:
                return ViewTarget.save(Path(rest))
            except ViewError as exc:
                raise ViewError(f"--view save:{exc}") from None
        raise ViewError(f"--view {text}: give native, web or save:PATH.rrd")

    @staticmethod
    def save(path: Path) -> ViewTarget:
        """A recording written to ``path`` (an .rrd file in a directory that exists)."""
        if path.suffix != ".rrd":
            raise ViewError(f"{path}: a recording is an .rrd file (e.g. run.rrd)")
        if not path.parent.is_dir():
            raise ViewError(f"{path}: no directory {str(path.parent)!r} to write it in")
        return ViewTarget("save", path)


def require_rerun() -> Any:
    """The ``rerun`` module, or a :class:`ViewError` saying how to install it."""
    try:
        import rerun
    except ImportError:
        raise ViewError(INSTALL_HINT) from None
    return rerun


def open_recording(target: ViewTarget, app_id: str, recording_id: str) -> tuple[Any, str | None]:
    """A recording stream sending to ``target``, and the URL to open for ``web`` (else None)."""
    rr = require_rerun()
    rec = rr.RecordingStream(app_id, recording_id=recording_id)
    url = None
    if target.kind == "save":
        rec.save(str(target.path))
    elif target.kind == "native":
        rec.spawn()
    else:
        grpc = rec.serve_grpc(grpc_port=_free_port())  # Rerun's fixed default would collide with a second viewer
        port = target.web_port or _free_port()
        rr.serve_web_viewer(web_port=port, open_browser=False, connect_to=grpc)
        url = f"http://127.0.0.1:{port}/?url={_quote(grpc)}"
    return rec, url


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")
