"""Alembic environment: runs on the connection the app hands over, or on DATABASE_URL."""

from alembic import context

from core.config import get_settings
from core.db import changing_schema, make_engine
from core.models import Base

target_metadata = Base.metadata


def run_migrations_on(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_migrations_on(connection)
else:
    # `alembic upgrade head` by hand: the same foreign-key care and lock as `core.db.migrate`.
    with changing_schema(make_engine(get_settings().sqlalchemy_url)) as conn:
        run_migrations_on(conn)
