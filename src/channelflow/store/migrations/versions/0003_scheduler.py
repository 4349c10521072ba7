"""scheduler: meetings changed by hand, agenda bookkeeping, the toolkit

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meeting",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("body", sa.String(length=16), nullable=False),
        sa.Column("uid", sa.String(length=128), nullable=False),
        sa.Column("rule_day", sa.Date(), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("uid"),
        sa.UniqueConstraint("body", "rule_day"),
    )
    op.create_table(
        "meeting_notice",
        sa.Column("meeting_uid", sa.String(length=128), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("meeting_uid", "sequence"),
    )
    op.create_table(
        "agenda_item",
        sa.Column("meeting_uid", sa.String(length=128), nullable=False),
        sa.Column("reference", sa.String(length=32), nullable=False),
        sa.Column("announced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("meeting_uid", "reference"),
    )
    op.create_table(
        "toolkit_benchmark",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("rating", sa.String(length=32), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_table(
        "toolkit_action",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("benchmark_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("review_on", sa.Date(), nullable=True),
        sa.Column("completed_on", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["benchmark_id"], ["toolkit_benchmark.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_toolkit_action_benchmark_id", "toolkit_action", ["benchmark_id"])
    # The planner finds the post-exit reviews still to be held by due date on every pass.
    op.create_index(
        "ix_post_exit_review_open_due",
        "post_exit_review",
        ["due_on"],
        sqlite_where=sa.text("recorded_on IS NULL"),
        postgresql_where=sa.text("recorded_on IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_post_exit_review_open_due", table_name="post_exit_review")
    op.drop_index("ix_toolkit_action_benchmark_id", table_name="toolkit_action")
    for table in (
        "toolkit_action",
        "toolkit_benchmark",
        "agenda_item",
        "meeting_notice",
        "meeting",
    ):
        op.drop_table(table)
