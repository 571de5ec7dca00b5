#!/usr/bin/env python3
"""Render ops/nginx.conf: replace each `${NAME}` placeholder with $NAME from the environment.

Only `${UPPER_CASE}` placeholders outside comment lines are touched, so
nginx's own variables (`$host`, `$http_last_event_id`) pass through and the
template's own documentation of its placeholders stays readable; unlike a bare
`envsubst`, a placeholder left unset is an error rather than an empty string.

    NGINX_LISTEN=8080 SLUICE_A=127.0.0.1:8001 ... \
        python3 ops/render-nginx.py [--template T] [--out F]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
TEMPLATE = Path(__file__).with_name("nginx.conf")


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def placeholders(template: str) -> list[str]:
    """Every placeholder name used by a directive, in order of first use."""
    lines = (line for line in template.splitlines() if not _is_comment(line))
    return list(dict.fromkeys(name for line in lines for name in PLACEHOLDER.findall(line)))


def render(template: str, values: Mapping[str, str]) -> str:
    missing = [name for name in placeholders(template) if not values.get(name)]
    if missing:
        raise KeyError("unset: " + ", ".join(missing))
    return "".join(
        line if _is_comment(line) else PLACEHOLDER.sub(lambda m: values[m.group(1)], line)
        for line in template.splitlines(keepends=True)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument("--out", type=Path, help="write here instead of stdout")
    args = parser.parse_args(argv)
    template = args.template.read_text()
    try:
        text = render(template, os.environ)
    except KeyError as exc:
        print(f"render-nginx: {exc.args[0]} (set them in the environment)", file=sys.stderr)
        return 2
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
