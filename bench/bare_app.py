"""The baseline: one bare Starlette JSON endpoint, served as raspapi serves.

``python -m bench.bare_app --port 8099`` answers ``GET /system`` with a dict
shaped and sized like RaspAP's ``/system`` (14 keys), serialised on every
request, under uvicorn with the options of ``raspapi/daemon/server.py``.
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from raspapi.daemon.uvicornopts import uvicorn_config

PAYLOAD = {
    "hostname": "raspberrypi",
    "uptime": "up 2 days, 3 hours, 14 minutes",
    "systime": "Sun 10 Mar 11:11:11 CET 2024",
    "usedMemory": 23.41,
    "usedDisk": 18.0,
    "processorCount": 4,
    "LoadAvg1Min": 0.12,
    "systemLoadPercentage": 3.0,
    "systemTemperature": 48.31,
    "hostapdStatus": 1,
    "operatingSystem": "Debian GNU/Linux 12 (bookworm)",
    "kernelVersion": "6.6.31+rpt-rpi-v8",
    "rpiRevision": "Pi 4 Model B Rev 1.4 (4 GB)",
    "raspapVersion": "3.2.1",
}


async def system(request: Request) -> JSONResponse:
    return JSONResponse(dict(PAYLOAD))


app = Starlette(routes=[Route("/system", system)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args()
    config = uvicorn_config(app, args.host, args.port)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
