"""Request and response bodies of the platform's REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from annotated_types import Ge, Le
from pydantic import BaseModel, ConfigDict, Field

from kosmos.platform.identity.names import Name

RoleName = Literal["viewer", "developer", "maintainer", "admin"]


class Body(BaseModel):
    """Request bodies refuse unknown fields, so a typo is an error, not a silent no-op."""

    model_config = ConfigDict(extra="forbid")


class UserCreate(Body):
    name: Name = Field(description="Login name: a lowercase slug, at most 128 characters.")
    email: str | None = Field(default=None, max_length=320, description="Contact address.")
    is_admin: bool = Field(default=False, description="Platform administrator.")


class UserOut(BaseModel):
    name: str
    email: str | None
    is_admin: bool
    disabled: bool
    created_at: datetime


class WhoAmI(BaseModel):
    user: str
    is_admin: bool
    token_project: str | None = Field(description="The project the token is limited to, if any.")
    token_role: RoleName | None = Field(description="The role the token is capped at, if any.")


class TeamCreate(Body):
    name: Name = Field(description="Team name, e.g. risk, compliance, customer-service.")
    description: str = Field(default="", max_length=2000)


class TeamOut(BaseModel):
    name: str
    description: str
    created_at: datetime


class MemberSet(Body):
    role: RoleName = Field(description="viewer, developer, maintainer or admin.")


class MemberOut(BaseModel):
    user: str
    role: RoleName


class ProjectCreate(Body):
    name: Name = Field(description="Project name: a lowercase slug, unique on the platform.")
    team: Name = Field(description="The team that owns the project.")
    description: str = Field(default="", max_length=2000)


class ProjectOut(BaseModel):
    name: str
    team: str
    description: str
    created_at: datetime
    role: RoleName = Field(description="The caller's role on this project.")


class TokenCreate(Body):
    name: Name = Field(description="A name for the token, unique per user.")
    project: Name | None = Field(default=None, description="Limit the token to this project.")
    role: RoleName | None = Field(default=None, description="Cap the token at this role.")
    ttl_days: int | None = Field(
        default=90,
        ge=1,
        le=3650,
        description="Lifetime in days; null for no expiry. A token minted with an expiring token "
        "expires no later than it.",
    )
    user: Name | None = Field(default=None, description="Owner (platform admins only).")


class TokenOut(BaseModel):
    name: str
    user: str
    prefix: str = Field(description="The first characters of the secret, for recognition.")
    project: str | None
    role: RoleName | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="The secret. Shown once; Kosmos keeps only its hash.")


class AuditEventOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_name: str
    project: str | None
    outcome: str
    request_id: str | None
    details: dict[str, Any]


class PluginOut(BaseModel):
    name: str
    package: str
    version: str
    has_api: bool
    has_cli: bool


MAX_ROW_ID = 2**31 - 1
RowId = Annotated[int, Ge(1), Le(MAX_ROW_ID)]
"""An id or version number as the databases store it (a 32-bit integer): a larger one is a 422
naming the field, not a database overflow."""
