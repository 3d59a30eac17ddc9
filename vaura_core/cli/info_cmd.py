"""`vaura info CLIP`: what VAURA Studio sees in a clip."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe a video clip", description=__doc__)
    p.add_argument("clip", help="video file")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def clip_summary(info) -> dict:
    return {
        "path": str(info.path),
        "container": info.container,
        "size_bytes": info.size_bytes,
        "duration": round(info.duration, 6),
        "start_time": round(info.start_time, 6),
        "video": {
            "codec": info.video_codec,
            "width": info.width,
            "height": info.height,
            "display_width": info.display_width,
            "display_height": info.display_height,
            "rotation": info.rotation,
            "frame_rate": round(info.frame_rate, 6),
            "variable_frame_rate": info.variable_frame_rate,
            "frame_count": info.frame_count,
            "pixel_format": info.pixel_format,
        },
        "audio_tracks": [
            {"index": a.index, "codec": a.codec, "sample_rate": a.sample_rate, "channels": a.channels}
            for a in info.audio_tracks
        ],
    }


def run(args: argparse.Namespace) -> int:
    from vaura_core.cli import EXIT_BAD_INPUT
    from vaura_core.media.errors import MediaError
    from vaura_core.media.probe import probe

    try:
        info = probe(args.clip)
    except MediaError as exc:
        print(f"vaura info: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    summary = clip_summary(info)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    v = summary["video"]
    rate = f"{v['frame_rate']:.3f} fps" + (" (variable)" if v["variable_frame_rate"] else "")
    print(f"{info.path.name}")
    print(f"  duration   {info.duration:.3f} s (starts at {info.start_time:.3f} s)")
    size = f"{v['display_width']}x{v['display_height']}"
    print(f"  video      {v['codec']} {size} {rate}, {v['frame_count']} frames")
    if v["rotation"]:
        print(f"  rotation   {v['rotation']} degrees (stored {v['width']}x{v['height']})")
    if not summary["audio_tracks"]:
        print("  audio      none")
    for a in summary["audio_tracks"]:
        print(f"  audio #{a['index']}   {a['codec']} {a['sample_rate']} Hz, {a['channels']} ch")
    print(f"  container  {info.container}, {info.size_bytes / 1e6:.1f} MB")
    return 0
