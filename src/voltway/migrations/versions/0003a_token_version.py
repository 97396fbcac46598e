"""Drivers' token generation: a bearer token is valid only while its `ver` claim equals `users.token_version`,
so a password change or a sign-out everywhere bumps the number and every earlier token stops working.

Revision ID: 0003a
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003a"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The server default gives existing drivers generation 0, the one their tokens (without `ver`) count as.
    op.add_column("users", sa.Column("token_version", sa.Integer(), nullable=False, server_default=sa.text("0")))


def downgrade() -> None:
    op.drop_column("users", "token_version")
