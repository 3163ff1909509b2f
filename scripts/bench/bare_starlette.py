"""The baseline of scripts/bench/api.py: a bare Starlette app that answers GXFT's own answers.

    python scripts/bench/bare_starlette.py --port PORT --answers ANSWERS.json

ANSWERS.json holds one job, one page of jobs and one page of events as GXFT answered them. They are
decoded into GXFT's own wire types at start-up and encoded by msgspec for every request, under
uvicorn with httptools and uvloop as `gxft serve` runs: what is left between this app and GXFT is
GXFT's own work (its middleware, authentication, storage reads and presenters).
"""

import argparse
import sys
from pathlib import Path

import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from server.protocol import FineTuningJob, FineTuningJobEvent, ListPage  # noqa: E402


class Answers(msgspec.Struct):
    job: FineTuningJob
    jobs: ListPage[FineTuningJob]
    events: ListPage[FineTuningJobEvent]


def create_app(answers: Answers) -> Starlette:
    encode = msgspec.json.Encoder().encode

    def answer(value: msgspec.Struct) -> Response:
        return Response(encode(value), media_type="application/json")

    async def retrieve_job(request: Request) -> Response:
        return answer(answers.job)

    async def list_jobs(request: Request) -> Response:
        return answer(answers.jobs)

    async def list_events(request: Request) -> Response:
        return answer(answers.events)

    return Starlette(routes=[
        Route("/v1/fine_tuning/jobs", list_jobs, methods=["GET"]),
        Route("/v1/fine_tuning/jobs/{job_id}", retrieve_job, methods=["GET"]),
        Route("/v1/fine_tuning/jobs/{job_id}/events", list_events, methods=["GET"]),
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--answers", type=Path, required=True)
    args = parser.parse_args()
    answers = msgspec.json.decode(args.answers.read_bytes(), type=Answers)
    uvicorn.run(create_app(answers), host="127.0.0.1", port=args.port, http="httptools", loop="uvloop",
                log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
