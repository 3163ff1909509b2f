"""`/v1/fine_tuning/alpha/graders/run` and `/validate`: a grader tried on one sample, or checked, before a
reinforcement job trains with it."""

from starlette.requests import Request
from starlette.routing import Route

from contract.graders import GraderRunResponse, RunGraderRequest, ValidateGraderRequest, ValidateGraderResponse
from server.decoding import decode_json
from server.openapi import operation
from server.responses import MsgspecResponse
from server.services import project, services


@operation("Run a grader", body=RunGraderRequest, response=GraderRunResponse)
async def run_grader(request: Request) -> MsgspecResponse:
    body = await decode_json(request, RunGraderRequest)
    return MsgspecResponse(await services(request).graders.run(project(request), body))


@operation("Validate a grader", body=ValidateGraderRequest, response=ValidateGraderResponse)
async def validate_grader(request: Request) -> MsgspecResponse:
    body = await decode_json(request, ValidateGraderRequest)
    services(request).graders.check(project(request), body.grader)
    return MsgspecResponse(ValidateGraderResponse(grader=body.grader))


routes = [
    Route("/v1/fine_tuning/alpha/graders/run", run_grader, methods=["POST"]),
    Route("/v1/fine_tuning/alpha/graders/validate", validate_grader, methods=["POST"]),
]
