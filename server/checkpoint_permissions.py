"""Sharing a fine-tuned checkpoint with other projects, as OpenAI's admin-key checkpoint permissions do: a
project granted a checkpoint sees it in `/v1/models`, calls it and trains from it; nothing else of the owner's
(its job, files, other checkpoints) becomes visible, and only the owner may delete or export it."""

import time

from contract.ids import new_id
from server.errors import invalid_request, not_found
from server.pagination import after_cursor, list_page
from server.protocol import CheckpointPermission, CheckpointPermissionListQuery, ListPage
from storage.checkpoint_permissions import PermissionRecord, PermissionRepository
from storage.jobs import CheckpointRecord, JobRepository


def permission_object(record: PermissionRecord) -> CheckpointPermission:
    return CheckpointPermission(id=record.id, created_at=record.created_at, project_id=record.project_id)


class CheckpointPermissions:
    def __init__(self, jobs: JobRepository, permissions: PermissionRepository, projects: set[str]):
        self.jobs = jobs
        self.permissions = permissions
        self.projects = projects  # those of the configured API keys

    def checkpoint(self, name: str) -> CheckpointRecord:
        checkpoint = self.jobs.model_checkpoint(None, name)
        if checkpoint is None:
            raise not_found("checkpoint", name, param="fine_tuned_model_checkpoint")
        return checkpoint

    def grant(self, name: str, project_ids: list[str]) -> list[PermissionRecord]:
        checkpoint = self.checkpoint(name)
        owner = self.jobs.get(checkpoint.job_id)
        assert owner is not None
        for project_id in project_ids:
            if project_id not in self.projects:
                raise invalid_request(f"No project {project_id[:100]!r} on this server; its projects are those of "
                                      f"GXFT_API_KEYS: {', '.join(sorted(self.projects))}.", param="project_ids")
            if project_id == owner.project:
                raise invalid_request(f"{name} belongs to the project {project_id}, which needs no permission.",
                                      param="project_ids")
        granted = []
        with self.jobs.db.transaction():
            for project_id in dict.fromkeys(project_ids):  # granting twice answers the grant there is
                record = self.permissions.granted(checkpoint.id, project_id)
                if record is None:
                    record = PermissionRecord(id=new_id("cp_"), checkpoint_id=checkpoint.id, project_id=project_id,
                                              created_at=int(time.time()))
                    self.permissions.insert(record)
                granted.append(record)
        return granted

    def page(self, name: str, query: CheckpointPermissionListQuery) -> ListPage[CheckpointPermission]:
        checkpoint = self.checkpoint(name)
        after = after_cursor(query.after, lambda permission_id: self.permissions.cursor_seq(checkpoint.id,
                                                                                             permission_id))
        records, has_more = self.permissions.page(checkpoint.id, query.project_id, after, query.limit,
                                                  descending=query.order == "descending")
        return list_page([permission_object(r) for r in records], [r.id for r in records], has_more)

    def revoke(self, name: str, permission_id: str) -> None:
        checkpoint = self.checkpoint(name)
        if self.permissions.get(checkpoint.id, permission_id) is None:
            raise not_found("checkpoint permission", permission_id, param="permission_id")
        self.permissions.revoke(permission_id)
