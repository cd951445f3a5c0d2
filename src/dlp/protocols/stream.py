"""Real-time inference over a WebSocket: inputs in as JSON messages, predictions out as made."""

from __future__ import annotations

import json
import uuid

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError as PydanticValidationError
from starlette.concurrency import run_in_threadpool

from dlp.db import session_scope
from dlp.dependencies import principal_from_token
from dlp.errors import AuthenticationError, DLPError
from dlp.events.router import close_code, close_reason
from dlp.platform import Platform
from dlp.predictions.schemas import PredictRequest
from dlp.registry import service
from dlp.registry.models import Model

router = APIRouter(prefix="/api/v1/models", tags=["models"])


@router.websocket("/{model_id}/stream")
async def stream_predictions(
    websocket: WebSocket, model_id: uuid.UUID, token: str | None = None, org: str | None = None
) -> None:
    """Send ``{"inputs": [...]}`` messages (as for ``/predict``); each gets the prediction
    answer, or ``{"error", "message"}`` for a bad one, and the socket stays open.

    ``?token=`` is an access token or an API key. Refusals close the socket before
    any answer: 4401 bad credentials, 4403 not a member of ``?org=``, 4404 no such model.
    """
    await websocket.accept()
    platform: Platform = websocket.app.state.platform
    try:
        if not token:
            raise AuthenticationError("credentials required: ?token=<access token or API key>")
        model = await run_in_threadpool(_load_model, platform, token, org, model_id)
    except DLPError as exc:
        await websocket.close(code=close_code(exc), reason=close_reason(exc.message))
        return
    server = websocket.app.state.model_server
    try:
        while True:
            message = await websocket.receive_text()
            try:
                request = PredictRequest.model_validate(json.loads(message))
                answer = await server.predict(model, request.inputs)
            except (ValueError, PydanticValidationError) as exc:
                await websocket.send_json({"error": "validation_error", "message": _first(exc)})
            except DLPError as exc:
                await websocket.send_json({"error": exc.code, "message": exc.message})
            else:
                await websocket.send_text(answer.model_dump_json())
    except WebSocketDisconnect:
        return


def _load_model(platform: Platform, token: str, org: str | None, model_id: uuid.UUID) -> Model:
    principal = principal_from_token(platform, token, org)
    with session_scope(platform.sessions) as session:
        return service.get_model_or_raise(session, principal, model_id)


def _first(exc: Exception) -> str:
    if isinstance(exc, PydanticValidationError):
        error = exc.errors()[0]
        return f"{'.'.join(str(p) for p in error['loc']) or 'message'}: {error['msg']}"
    return f"the message is not JSON: {exc}"
