"""Public shapes of drivers, tokens and API keys."""

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from voltway.accounts.roles import Role
from voltway.core.pagination import UtcDatetime
from voltway.stations.schemas import ConnectorType

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


def _email(value: str) -> str:
    value = value.strip().lower()
    if not _EMAIL.match(value):
        raise ValueError("not an email address")
    return value


def _password(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Email = Annotated[str, Field(max_length=254), AfterValidator(_email)]
Password = Annotated[str, Field(min_length=8, max_length=128), AfterValidator(_password)]
CarConnectors = Annotated[list[ConnectorType], Field(max_length=20, description="Connector codes of the car")]


class RegisterIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"email": "ada@example.org", "password": "correct horse battery",
                                         "display_name": "Ada", "car_connectors": ["ccs2", "type2"]}]}
    )

    email: Email
    password: Password
    display_name: str | None = Field(None, min_length=1, max_length=100)
    car_connectors: CarConnectors = Field(default_factory=list)


class ProfilePatch(BaseModel):
    """Only the fields present are changed."""

    display_name: str | None = Field(None, min_length=1, max_length=100)
    car_connectors: CarConnectors | None = None


class PasswordChangeIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"current_password": "correct horse battery",
                                         "new_password": "a new long passphrase"}]}
    )

    current_password: str = Field(min_length=1, max_length=128)
    new_password: Password


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    display_name: str | None
    car_connectors: list[str]
    created_at: UtcDatetime


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the token expires")


class KeyIn(BaseModel):
    role: Role
    name: str | None = Field(None, min_length=1, max_length=128)


class KeyOut(BaseModel):
    """An API key as listed: never its secret."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    prefix: str
    role: Role
    name: str | None
    created_at: UtcDatetime
    last_used_at: UtcDatetime | None
    revoked_at: UtcDatetime | None


class NewKeyOut(KeyOut):
    key: str = Field(description="The secret, shown this once; only its hash is stored")
