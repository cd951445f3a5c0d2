"""htmx fragments: each calls the JSON API's own endpoint function, with the same
dependencies, and renders its answer as HTML. No business rules live here."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse

from dlp.auth import router as auth_api
from dlp.auth.models import Role
from dlp.datasets import router as datasets_api
from dlp.dependencies import CurrentPrincipal, PlatformDep, SessionDep
from dlp.registry import names_router as registry_api
from dlp.registry import router as models_api
from dlp.schemas import PageParams, page_params
from dlp.training import router as training_api
from dlp.training.schemas import JobStatus
from dlp.tuning import router as tuning_api
from dlp.web.templating import templates

router = APIRouter(
    prefix="/ui/fragments", include_in_schema=False, default_response_class=HTMLResponse
)

Paging = Annotated[PageParams, Depends(page_params)]
ModelName = Annotated[str, Path(min_length=1, max_length=100)]


def render_fragment(request: Request, template: str, **context: Any) -> HTMLResponse:
    """A piece of a page, for htmx to swap in."""
    return templates.TemplateResponse(request, f"fragments/{template}", context)


@router.get("/me")
def me(request: Request, principal: CurrentPrincipal) -> HTMLResponse:
    """The signed-in user, for the header."""
    return render_fragment(request, "me.html", user=auth_api.me(principal))


@router.get("/datasets")
def datasets(
    request: Request, session: SessionDep, principal: CurrentPrincipal, page: Paging
) -> HTMLResponse:
    """The dataset table."""
    answer = datasets_api.list_datasets(session, principal, page)
    return render_fragment(request, "datasets.html", page=answer)


@router.get("/dataset-options")
def dataset_options(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    selected: uuid.UUID | None = None,
) -> HTMLResponse:
    """``<option>``s of the ready datasets, for the training form."""
    answer = datasets_api.list_datasets(session, principal, PageParams(limit=200))
    ready = [d for d in answer.items if d.status == "ready"]
    return render_fragment(request, "dataset_options.html", datasets=ready, selected=selected)


@router.get("/datasets/{dataset_id}")
def dataset(
    request: Request, dataset_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal
) -> HTMLResponse:
    """A dataset's profile table."""
    answer = datasets_api.get_dataset(dataset_id, session, principal)
    return render_fragment(request, "dataset.html", dataset=answer)


@router.get("/train-fields")
def train_fields(
    request: Request, dataset_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal
) -> HTMLResponse:
    """The training form's fields that depend on the dataset: its columns."""
    answer = datasets_api.get_dataset(dataset_id, session, principal)
    return render_fragment(request, "train_fields.html", dataset=answer)


@router.get("/jobs")
def jobs(
    request: Request,
    session: SessionDep,
    platform: PlatformDep,
    principal: CurrentPrincipal,
    page: Paging,
    status: JobStatus | None = None,
    selectable: bool = False,
) -> HTMLResponse:
    """The job table with status badges (and boxes to pick jobs to compare)."""
    answer = training_api.list_jobs(session, platform, principal, status, page)
    return render_fragment(request, "jobs.html", page=answer, selectable=selectable)


@router.get("/jobs/{job_id}")
def job(
    request: Request,
    job_id: uuid.UUID,
    session: SessionDep,
    platform: PlatformDep,
    principal: CurrentPrincipal,
) -> HTMLResponse:
    """A job's status, progress and final metrics."""
    answer = training_api.get_job(job_id, session, platform, principal)
    return render_fragment(request, "job.html", job=answer)


@router.get("/models")
def models(
    request: Request, session: SessionDep, principal: CurrentPrincipal, page: Paging
) -> HTMLResponse:
    """The model versions, grouped by name."""
    answer = models_api.list_models(session, principal, page)
    names: dict[str, list[Any]] = {}
    for version in answer.items:
        names.setdefault(version.name, []).append(version)
    return render_fragment(request, "models.html", page=answer, names=names)


@router.get("/models/{model_id}")
def model(
    request: Request, model_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal
) -> HTMLResponse:
    """A model version's metrics, confusion matrix and inputs."""
    answer = models_api.get_model(model_id, session, principal)
    return render_fragment(request, "model.html", model=answer)


@router.get("/models/{model_id}/playground")
def playground(
    request: Request, model_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal
) -> HTMLResponse:
    """The prediction form for a model version's inputs."""
    answer = models_api.get_model(model_id, session, principal)
    return render_fragment(request, "playground.html", model=answer)


@router.get("/registry/{name}")
def registry_name(
    request: Request, name: ModelName, session: SessionDep, principal: CurrentPrincipal
) -> HTMLResponse:
    """A model name's versions, aliases and traffic split."""
    answer = registry_api.list_versions(name, session, principal)
    return render_fragment(request, "registry.html", registry=answer)


@router.get("/studies")
def studies(
    request: Request, session: SessionDep, principal: CurrentPrincipal, page: Paging
) -> HTMLResponse:
    """The tuning studies."""
    answer = tuning_api.list_studies(session, principal, page)
    return render_fragment(request, "studies.html", page=answer)


@router.get("/studies/{study_id}")
def study(
    request: Request, study_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal
) -> HTMLResponse:
    """A study's best trial and trials."""
    answer = tuning_api.get_study(study_id, session, principal)
    return render_fragment(request, "study.html", study=answer)


@router.get("/members")
def members(
    request: Request, session: SessionDep, principal: CurrentPrincipal, page: Paging
) -> HTMLResponse:
    """The member table: read-only, or with the add, role and remove controls for admins."""
    answer = auth_api.list_members(session, principal, page)
    return render_fragment(
        request,
        "members.html",
        page=answer,
        manage=principal.role == Role.ADMIN,
        me=principal.user.id,
        roles=list(Role),
    )
