"""Tuning endpoints: start a study, list, read with its trials, cancel."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, status

from dlp.dependencies import CurrentPrincipal, PlatformDep, SessionDep, WriterPrincipal
from dlp.schemas import Page, PageParams, page_params
from dlp.tuning import service
from dlp.tuning.schemas import StudyCreate, StudyDetail, StudyOut

router = APIRouter(prefix="/api/v1/tuning/studies", tags=["tuning"])


@router.post("", status_code=status.HTTP_202_ACCEPTED)
def create_study(
    body: StudyCreate, session: SessionDep, platform: PlatformDep, principal: WriterPrincipal
) -> StudyDetail:
    """Start a study: its first trials are queued at once; poll it until it ends."""
    study = service.create_study(session, platform, principal, body)
    return StudyDetail.build(study, service.trials_of(session, [study])[study.id])


@router.get("")
def list_studies(
    session: SessionDep, principal: CurrentPrincipal, page: PageParams = Depends(page_params)
) -> Page[StudyOut]:
    """The organization's studies, newest first, without their trials."""
    rows, total = service.list_studies(session, principal, limit=page.limit, offset=page.offset)
    trials = service.trials_of(session, rows)
    return Page.build(rows, total, page, lambda study: StudyOut.build(study, trials[study.id]))


@router.get("/{study_id}")
def get_study(study_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal) -> StudyDetail:
    """A study with its trials (number, parameters, value, state, job), best trial and
    parameter importances."""
    study = service.get_study_or_raise(session, principal, study_id)
    return StudyDetail.build(study, service.trials_of(session, [study])[study.id])


@router.post("/{study_id}/cancel", status_code=status.HTTP_202_ACCEPTED)
def cancel_study(
    study_id: uuid.UUID, session: SessionDep, platform: PlatformDep, principal: WriterPrincipal
) -> StudyDetail:
    """Cancel a study: queued trials never start, running ones stop within seconds."""
    study = service.cancel_study(session, platform, principal, study_id)
    return StudyDetail.build(study, service.trials_of(session, [study])[study.id])
