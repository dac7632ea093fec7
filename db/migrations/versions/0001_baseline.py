"""The store as ddft made it before migrations: fourteen tables and the search over samples.

Revision ID: 0001
Revises:
Create Date: 2026-05-20

On an empty database this creates the schema. On a store made by a ddft from before migrations
(tables, no alembic_version) it is the legacy step that replaced open_store's own additions:
a `rating` table of the shape from before campaigns is dropped while empty (refused when it holds
ratings), missing tables and indexes are created, and columns added since the store was made
are added, existing rows getting each column's `default` below (the time of the upgrade for
timestamps). Every row is kept.

Search: SQLite gets an FTS5 table kept in step by triggers (new samples are indexed in bulk by
db.queries.add_samples; a per-row insert trigger made a 158,000-row import seven times slower),
filled once for the samples already there. PostgreSQL gets a GIN index over the same words:
prompt, answer and external id, diacritics folded and every run of non-alphanumeric characters
a separator, as SQLite's unicode61 tokenizer reads them. db.queries searches with this exact
expression.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _schema() -> sa.MetaData:
    """The tables of ddft 0.1.0 as they stood when migrations began (frozen: later changes are
    later migrations)."""
    metadata = sa.MetaData()
    sa.Table(
        'dataset',
        metadata,
        sa.Column('id', sa.Integer(), primary_key=True, nullable=False),
        sa.Column('name', sa.String(), nullable=False),
        sa.Column('modality', sa.String(), nullable=False),
        sa.Column('purpose', sa.String(), nullable=False, default='train'),
        sa.Column('source', sa.String(), nullable=False, default=''),
        sa.Column('root', sa.String(), nullable=False, default=''),
        sa.Column('description', sa.String(), nullable=False, default=''),
        sa.Column('meta', sa.JSON(), nullable=False, default={}),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, default=utcnow),
        sa.Index('ix_dataset_name', 'name', unique=True),
    )
    sa.Table(
        'job',
        metadata,
        sa.Column('id', sa.Integer(), primary_key=True, nullable=False),
        sa.Column('kind', sa.String(), nullable=False),
        sa.Column('status', sa.String(), nullable=False, default='queued'),
        sa.Column('title', sa.String(), nullable=False, default=''),
        sa.Column('params', sa.JSON(), nullable=False, default={}),
        sa.Column('pid', sa.Integer(), nullable=True),
        sa.Column('host', sa.String(), nullable=False, default=''),
        sa.Column('step', sa.Integer(), nullable=False, default=0),
        sa.Column('total', sa.Integer(), nullable=False, default=0),
        sa.Column('message', sa.String(), nullable=False, default=''),
        sa.Column('cancel_requested', sa.Boolean(), nullable=False, default=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('result', sa.JSON(), nullable=False, default={}),
        sa.Column('log_path', sa.String(), nullable=False, default=''),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, default=utcnow),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Index('ix_job_kind', 'kind'),
        sa.Index('ix_job_status', 'status'),
    )
    sa.Table(
        'rater',
        metadata,
        sa.Column('id', sa.Integer(), primary_key=True, nullable=False),
        sa.Column('name', sa.String(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, default=utcnow),
        sa.Index('ix_rater_name', 'name', unique=True),
    )
    sa.Table(
        'campaign',
        metadata,
        sa.Column('id', sa.Integer(), primary_key=True, nullable=False),
        sa.Column('name', sa.String(), nullable=False),
        sa.Column('mode', sa.String(), nullable=False),
        sa.Column('dataset_id', sa.Integer(), sa.ForeignKey('dataset.id'), nullable=False),
        sa.Column('variant_ids', sa.JSON(), nullable=False, default=[]),
        sa.Column('raters_per_item', sa.Integer(), nullable=False, default=1),
        sa.Column('seed', sa.Integer(), nullable=False, default=0),
        sa.Column('description', sa.String(), nullable=False, default=''),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, default=utcnow),
        sa.Index('ix_campaign_dataset_id', 'dataset_id'),
        sa.Index('ix_campaign_name', 'name', unique=True),
    )
    sa.Table(
        'checkpoint',
        metadata,
        sa.Column('id', sa.Integer(), primary_key=True, nullable=False),
        sa.Column('job_id', sa.Integer(), sa.ForeignKey('job.id'), nullable=False),
        sa.Column('step', sa.Integer(), nullable=False),
        sa.Column('path', sa.String(), nullable=False),
        sa.Column('final', sa.Boolean(), nullable=False, default=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, default=utcnow),
        sa.UniqueConstraint('job_id', 'step', name='uq_checkpoint_job_step'),
        sa.Index('ix_checkpoint_job_id', 'job_id'),
    )
    sa.Table(
        'metric',
        metadata,
        sa.Column('id', sa.Integer(), primary_key=True, nullable=False),
        sa.Column('job_id', sa.Integer(), sa.ForeignKey('job.id'), nullable=False),
        sa.Column('step', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(), nullable=False),
        sa.Column('value', sa.Float(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, default=utcnow),
        sa.Index('ix_metric_job_name_step', 'job_id', 'name', 'step'),
    )
    sa.Table(
        'sample',
        metadata,
        sa.Column('id', sa.Integer(), primary_key=True, nullable=False),
        sa.Column('dataset_id', sa.Integer(), sa.ForeignKey('dataset.id'), nullable=False),
        sa.Column('external_id', sa.String(), nullable=False),
        sa.Column('modality', sa.String(), nullable=False),
        sa.Column('split', sa.String(), nullable=False, default='train'),
        sa.Column('media_path', sa.String(), nullable=True),
        sa.Column('prompt', sa.Text(), nullable=False),
        sa.Column('answer', sa.Text(), nullable=False),
        sa.Column('group', sa.String(), nullable=False, default=''),
        sa.Column('included', sa.Boolean(), nullable=False, default=True),
        sa.Column('duration_s', sa.Float(), nullable=True),
        sa.Column('check_status', sa.String(), nullable=False, default='unchecked'),
        sa.Column('check_reasons', sa.JSON(), nullable=False, default=[]),
        sa.Column('checked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('meta', sa.JSON(), nullable=False, default={}),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, default=utcnow),
        sa.UniqueConstraint('dataset_id', 'external_id', name='uq_sample_dataset_external'),
        sa.Index('ix_sample_check_status', 'check_status'),
        sa.Index('ix_sample_dataset_id', 'dataset_id'),
        sa.Index('ix_sample_dataset_modality', 'dataset_id', 'modality'),
        sa.Index('ix_sample_dataset_split', 'dataset_id', 'split'),
        sa.Index('ix_sample_included', 'included'),
        sa.Index('ix_sample_modality', 'modality'),
    )
    sa.Table(
        'modelvariant',
        metadata,
        sa.Column('id', sa.Integer(), primary_key=True, nullable=False),
        sa.Column('name', sa.String(), nullable=False),
        sa.Column('base_model', sa.String(), nullable=False),
        sa.Column('adapter_path', sa.String(), nullable=True),
        sa.Column('job_id', sa.Integer(), sa.ForeignKey('job.id'), nullable=True),
        sa.Column('checkpoint_id', sa.Integer(), sa.ForeignKey('checkpoint.id'), nullable=True),
        sa.Column('description', sa.String(), nullable=False, default=''),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, default=utcnow),
        sa.Index('ix_modelvariant_name', 'name', unique=True),
    )
    sa.Table(
        'generation',
        metadata,
        sa.Column('id', sa.Integer(), primary_key=True, nullable=False),
        sa.Column('variant_id', sa.Integer(), sa.ForeignKey('modelvariant.id'), nullable=False),
        sa.Column('sample_id', sa.Integer(), sa.ForeignKey('sample.id'), nullable=False),
        sa.Column('job_id', sa.Integer(), sa.ForeignKey('job.id'), nullable=True),
        sa.Column('prompt', sa.Text(), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('params_key', sa.String(), nullable=False),
        sa.Column('decoding', sa.JSON(), nullable=False, default={}),
        sa.Column('frame_indices', sa.JSON(), nullable=False, default=[]),
        sa.Column('frame_times', sa.JSON(), nullable=False, default=[]),
        sa.Column('n_tokens', sa.Integer(), nullable=False, default=0),
        sa.Column('task', sa.String(), nullable=False, default='recipe'),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, default=utcnow),
        sa.UniqueConstraint('variant_id', 'sample_id', 'params_key', name='uq_generation_key'),
        sa.Index('ix_generation_sample_id', 'sample_id'),
        sa.Index('ix_generation_task', 'task'),
        sa.Index('ix_generation_variant_id', 'variant_id'),
    )
    sa.Table(
        'campaignitem',
        metadata,
        sa.Column('id', sa.Integer(), primary_key=True, nullable=False),
        sa.Column('campaign_id', sa.Integer(), sa.ForeignKey('campaign.id'), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('sample_id', sa.Integer(), sa.ForeignKey('sample.id'), nullable=False),
        sa.Column('generation_id', sa.Integer(), sa.ForeignKey('generation.id'), nullable=False),
        sa.Column('other_generation_id', sa.Integer(), sa.ForeignKey('generation.id'),
                  nullable=True),
        sa.UniqueConstraint('campaign_id', 'position', name='uq_campaign_item_position'),
        sa.Index('ix_campaignitem_campaign_id', 'campaign_id'),
        sa.Index('ix_campaignitem_generation_id', 'generation_id'),
        sa.Index('ix_campaignitem_sample_id', 'sample_id'),
    )
    sa.Table(
        'grounding',
        metadata,
        sa.Column('id', sa.Integer(), primary_key=True, nullable=False),
        sa.Column('generation_id', sa.Integer(), sa.ForeignKey('generation.id'), nullable=False),
        sa.Column('params_key', sa.String(), nullable=False),
        sa.Column('params', sa.JSON(), nullable=False, default={}),
        sa.Column('steps', sa.JSON(), nullable=False, default=[]),
        sa.Column('job_id', sa.Integer(), sa.ForeignKey('job.id'), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, default=utcnow),
        sa.UniqueConstraint('generation_id', 'params_key', name='uq_grounding_key'),
        sa.Index('ix_grounding_generation_id', 'generation_id'),
    )
    sa.Table(
        'judgment',
        metadata,
        sa.Column('id', sa.Integer(), primary_key=True, nullable=False),
        sa.Column('generation_id', sa.Integer(), sa.ForeignKey('generation.id'), nullable=False),
        sa.Column('judge', sa.String(), nullable=False),
        sa.Column('protocol', sa.String(), nullable=False),
        sa.Column('prompt_version', sa.String(), nullable=False),
        sa.Column('score', sa.Float(), nullable=True),
        sa.Column('verdict', sa.String(), nullable=False, default=''),
        sa.Column('raw', sa.Text(), nullable=False, default=''),
        sa.Column('details', sa.JSON(), nullable=False, default={}),
        sa.Column('job_id', sa.Integer(), sa.ForeignKey('job.id'), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, default=utcnow),
        sa.UniqueConstraint('generation_id', 'judge', 'protocol', 'prompt_version',
                            name='uq_judgment_key'),
        sa.Index('ix_judgment_generation_id', 'generation_id'),
    )
    sa.Table(
        'assignment',
        metadata,
        sa.Column('id', sa.Integer(), primary_key=True, nullable=False),
        sa.Column('campaign_id', sa.Integer(), sa.ForeignKey('campaign.id'), nullable=False),
        sa.Column('item_id', sa.Integer(), sa.ForeignKey('campaignitem.id'), nullable=False),
        sa.Column('rater_id', sa.Integer(), sa.ForeignKey('rater.id'), nullable=False),
        sa.Column('swapped', sa.Boolean(), nullable=False, default=False),
        sa.Column('state', sa.String(), nullable=False, default='open'),
        sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=False, default=utcnow),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False, default=utcnow),
        sa.UniqueConstraint('item_id', 'rater_id', name='uq_assignment_item_rater'),
        sa.Index('ix_assignment_campaign_id', 'campaign_id'),
        sa.Index('ix_assignment_item_id', 'item_id'),
        sa.Index('ix_assignment_rater_id', 'rater_id'),
        sa.Index('ix_assignment_state', 'state'),
    )
    sa.Table(
        'rating',
        metadata,
        sa.Column('id', sa.Integer(), primary_key=True, nullable=False),
        sa.Column('campaign_id', sa.Integer(), sa.ForeignKey('campaign.id'), nullable=False),
        sa.Column('item_id', sa.Integer(), sa.ForeignKey('campaignitem.id'), nullable=False),
        sa.Column('rater_id', sa.Integer(), sa.ForeignKey('rater.id'), nullable=False),
        sa.Column('generation_id', sa.Integer(), sa.ForeignKey('generation.id'), nullable=False),
        sa.Column('other_generation_id', sa.Integer(), sa.ForeignKey('generation.id'),
                  nullable=True),
        sa.Column('scores', sa.JSON(), nullable=False, default={}),
        sa.Column('choice', sa.String(), nullable=False, default=''),
        sa.Column('seconds', sa.Float(), nullable=False, default=0.0),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, default=utcnow),
        sa.UniqueConstraint('item_id', 'rater_id', name='uq_rating_item_rater'),
        sa.Index('ix_rating_campaign_id', 'campaign_id'),
        sa.Index('ix_rating_generation_id', 'generation_id'),
        sa.Index('ix_rating_item_id', 'item_id'),
        sa.Index('ix_rating_rater_id', 'rater_id'),
    )
    return metadata


# Letters with diacritics (Latin-1 and Latin Extended-A) and the letter each folds to, as SQLite's
# unicode61 tokenizer (remove_diacritics 2) folds them.
ACCENTED = (
    "ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝàáâãäåçèéêëìíîïñòóôõöùúûüýÿĀāĂăĄąĆ"
    "ćĈĉĊċČčĎďĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĨĩĪīĬĭĮįİĴĵĶķĹĺĻļĽľŃńŅņŇňŌōŎŏŐő"
    "ŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŨũŪūŬŭŮůŰűŲųŴŵŶŷŸŹźŻżŽž"
)
UNACCENTED = (
    "AAAAAACEEEEIIIINOOOOOUUUUYaaaaaaceeeeiiiinooooouuuuyyAaAaAaC"
    "cCcCcCcDdEeEeEeEeEeGgGgGgGgHhIiIiIiIiIJjKkLlLlLlNnNnNnOoOoOo"
    "RrRrRrSsSsSsSsTtTtUuUuUuUuUuUuWwYyYZzZzZz"
)
SEARCH_DOCUMENT = (
    "to_tsvector('simple'::regconfig, regexp_replace(translate(prompt || ' ' || answer || ' ' || "
    f"external_id, '{ACCENTED}', '{UNACCENTED}'), '[^[:alnum:]]+', ' ', 'g'))"
)
_SQLITE_SEARCH = (
    "CREATE VIRTUAL TABLE sample_fts USING fts5(prompt, answer, external_id, "
    "content='sample', content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER IF NOT EXISTS sample_fts_ad AFTER DELETE ON sample BEGIN "
    "INSERT INTO sample_fts(sample_fts, rowid, prompt, answer, external_id) "
    "VALUES ('delete', old.id, old.prompt, old.answer, old.external_id); END",
    "CREATE TRIGGER IF NOT EXISTS sample_fts_au AFTER UPDATE OF prompt, answer, external_id "
    "ON sample BEGIN "
    "INSERT INTO sample_fts(sample_fts, rowid, prompt, answer, external_id) "
    "VALUES ('delete', old.id, old.prompt, old.answer, old.external_id); "
    "INSERT INTO sample_fts(rowid, prompt, answer, external_id) "
    "VALUES (new.id, new.prompt, new.answer, new.external_id); END",
)


def _fill(column: sa.Column, dialect) -> str | None:
    """The SQL literal that rows made before `column` existed get, None for a nullable column."""
    if column.nullable or column.default is None:
        return None
    value = column.default.arg
    if callable(value):  # the timestamps: utcnow
        moment = utcnow()
        if dialect.name == "sqlite":
            return f"'{moment:%Y-%m-%d %H:%M:%S.%f}'"
        return f"'{moment.isoformat()}'"
    if isinstance(column.type, sa.JSON):
        return "'" + json.dumps(value).replace("'", "''") + "'"
    literal = sa.literal(value, column.type)
    return str(literal.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def _drop_empty_pre_campaign_rating(bind, inspector) -> None:
    if "rating" not in inspector.get_table_names():
        return
    if "item_id" in {c["name"] for c in inspector.get_columns("rating")}:
        return
    if bind.execute(sa.text("SELECT COUNT(*) FROM rating")).scalar():
        raise RuntimeError("the store's rating table predates campaigns and holds ratings; "
                           "copy them out before opening it with this ddft")
    op.drop_table("rating")


def upgrade() -> None:
    bind = op.get_bind()
    _drop_empty_pre_campaign_rating(bind, sa.inspect(bind))
    inspector = sa.inspect(bind)
    present = set(inspector.get_table_names())
    for table in _schema().sorted_tables:
        if table.name not in present:
            table.create(bind)
            continue
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in columns:
                continue
            fill = _fill(column, bind.dialect)
            op.add_column(table.name, sa.Column(
                column.name, column.type, nullable=column.nullable,
                server_default=None if fill is None else sa.text(fill)))
        for index in table.indexes:
            index.create(bind, checkfirst=True)
    if bind.dialect.name == "sqlite":
        _create_sqlite_search(bind)
    elif bind.dialect.name == "postgresql":
        op.execute(f"CREATE INDEX IF NOT EXISTS ix_sample_search ON sample USING gin "
                   f"({SEARCH_DOCUMENT})")


def _create_sqlite_search(bind) -> None:
    # An old insert trigger that indexed one row at a time; add_samples indexes in bulk.
    op.execute("DROP TRIGGER IF EXISTS sample_fts_ai")
    if bind.execute(sa.text("SELECT 1 FROM sqlite_master WHERE name = 'sample_fts'")).first():
        return
    for statement in _SQLITE_SEARCH:
        op.execute(statement)
    # A store made before search existed gets its samples indexed once.
    op.execute("INSERT INTO sample_fts(sample_fts) VALUES ('rebuild')")


def downgrade() -> None:
    raise NotImplementedError("the first revision has nothing to go back to")
