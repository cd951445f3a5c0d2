"""Page shells: no data and no credentials here; each page loads its fragments with the
browser's token once it is signed in (see ``static/js/auth.js``)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse

from dlp.web.templating import templates

router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)

ModelName = Annotated[str, Path(min_length=1, max_length=100)]


def render_page(request: Request, template: str, title: str, **context: Any) -> HTMLResponse:
    """A full page: the layout around ``template``."""
    return templates.TemplateResponse(
        request, template, {"title": title, "nav": template.split(".")[0], **context}
    )


@router.get("/")
def home(request: Request) -> HTMLResponse:
    """The overview: recent jobs and models."""
    return render_page(request, "home.html", "Overview")


@router.get("/ui/login")
def login(request: Request) -> HTMLResponse:
    """The sign-in form."""
    return render_page(request, "login.html", "Sign in", public=True)


@router.get("/ui/register")
def register(request: Request) -> HTMLResponse:
    """The sign-up form."""
    return render_page(request, "register.html", "Create an account", public=True)


@router.get("/ui/datasets")
def datasets(request: Request) -> HTMLResponse:
    """The dataset list and the upload form."""
    return render_page(request, "datasets.html", "Datasets")


@router.get("/ui/datasets/{dataset_id}")
def dataset(request: Request, dataset_id: uuid.UUID) -> HTMLResponse:
    """One dataset's profile."""
    return render_page(request, "dataset.html", "Dataset", dataset_id=dataset_id)


@router.get("/ui/jobs")
def jobs(request: Request) -> HTMLResponse:
    """The training jobs, with their status."""
    return render_page(request, "jobs.html", "Training jobs")


@router.get("/ui/jobs/new")
def new_job(request: Request, dataset_id: uuid.UUID | None = None) -> HTMLResponse:
    """The form that starts a training job."""
    return render_page(request, "job_new.html", "Train a model", dataset_id=dataset_id)


@router.get("/ui/jobs/{job_id}")
def job(request: Request, job_id: uuid.UUID) -> HTMLResponse:
    """One job, its curves growing live."""
    return render_page(request, "job.html", "Training job", job_id=job_id)


@router.get("/ui/compare")
def compare(
    request: Request, job: Annotated[list[uuid.UUID] | None, Query(max_length=20)] = None
) -> HTMLResponse:
    """Several jobs' curves on one chart (``?job=<id>`` once per job)."""
    return render_page(request, "compare.html", "Compare jobs", job_ids=job or [])


@router.get("/ui/models")
def models(request: Request) -> HTMLResponse:
    """The model versions, by name."""
    return render_page(request, "models.html", "Models")


@router.get("/ui/models/{model_id}")
def model(request: Request, model_id: uuid.UUID) -> HTMLResponse:
    """One model version: metrics, confusion matrix, inputs."""
    return render_page(request, "model.html", "Model", model_id=model_id)


@router.get("/ui/models/{model_id}/playground")
def playground(request: Request, model_id: uuid.UUID) -> HTMLResponse:
    """Try a model: a row, a CSV file or images."""
    return render_page(request, "playground.html", "Prediction playground", model_id=model_id)


@router.get("/ui/registry/{name}")
def registry_name(request: Request, name: ModelName) -> HTMLResponse:
    """A model name: versions, aliases and traffic split."""
    return render_page(request, "registry.html", name, model_name=name)


@router.get("/ui/studies")
def studies(request: Request) -> HTMLResponse:
    """The tuning studies."""
    return render_page(request, "studies.html", "Tuning studies")


@router.get("/ui/studies/{study_id}")
def study(request: Request, study_id: uuid.UUID) -> HTMLResponse:
    """One study: its trials as a scatter plot and a table."""
    return render_page(request, "study.html", "Tuning study", study_id=study_id)


@router.get("/ui/members")
def members(request: Request) -> HTMLResponse:
    """The current organization's members; admins also add, re-role and remove them."""
    return render_page(request, "members.html", "Members")
