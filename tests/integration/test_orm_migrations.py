"""ORM end to end with schema migrations: SQLAlchemy models, Alembic operations (ALTER TABLE), queries,
through both mysqlclient and PyMySQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

DRIVERS = [("mysql+mysqldb", "MySQLdb"), ("mysql+pymysql", "pymysql")]


def make_models():
    class Base(DeclarativeBase):
        pass

    class Shop(Base):
        __tablename__ = "mig_shops"
        id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
        name: Mapped[str] = mapped_column(sa.String(40), unique=True)
        products: Mapped[list[Product]] = relationship(back_populates="shop", cascade="all, delete-orphan")

    class Product(Base):
        __tablename__ = "mig_products"
        id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
        shop_id: Mapped[int] = mapped_column(sa.ForeignKey("mig_shops.id"))
        title: Mapped[str] = mapped_column(sa.String(60))
        price: Mapped[int] = mapped_column(sa.Integer, default=0)
        shop: Mapped[Shop] = relationship(back_populates="products")

    return Base, Shop, Product


@pytest.mark.parametrize(("url", "module"), DRIVERS)
def test_models_migrate_and_query(node, url, module):
    pytest.importorskip(module)
    engine = sa.create_engine(f"{url}://root:@127.0.0.1:{node.mysql_port}/marmot")
    Base, Shop, Product = make_models()
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS mig_products"))
        conn.execute(sa.text("DROP TABLE IF EXISTS mig_shops"))
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add(Shop(name="north", products=[Product(title="pen", price=3), Product(title="ink", price=7)]))
        s.commit()

    # migration 1: add columns, an index, change a type, rename a column (Alembic emits MySQL ALTERs)
    with engine.begin() as conn:
        op = Operations(MigrationContext.configure(conn))
        op.add_column("mig_products", sa.Column("sku", sa.String(20), nullable=True))
        op.add_column("mig_products", sa.Column("stock", sa.Integer, nullable=False, server_default="5"))
        op.create_index("ix_products_sku", "mig_products", ["sku"], unique=True)
        op.alter_column(
            "mig_products", "price", existing_type=sa.Integer, type_=sa.Numeric(10, 2), existing_nullable=True
        )
        op.alter_column(
            "mig_products",
            "title",
            new_column_name="label",
            existing_type=sa.String(60),
            existing_nullable=False,
        )
    inspector = sa.inspect(engine)
    columns = {c["name"]: c for c in inspector.get_columns("mig_products")}
    assert set(columns) == {"id", "shop_id", "label", "price", "sku", "stock"}
    assert isinstance(columns["price"]["type"], sa.Numeric) and columns["price"]["type"].scale == 2
    assert [ix["name"] for ix in inspector.get_indexes("mig_products") if ix["unique"]] == ["ix_products_sku"]
    assert inspector.get_foreign_keys("mig_products")[0]["referred_table"] == "mig_shops"

    # queries on the migrated schema: old rows kept their data, the new default applied
    with engine.begin() as conn:
        rows = conn.execute(sa.text("SELECT label, price, stock FROM mig_products ORDER BY label")).all()
        assert [(r[0], float(r[1]), r[2]) for r in rows] == [("ink", 7.0, 5), ("pen", 3.0, 5)]
        conn.execute(sa.text("UPDATE mig_products SET sku = CONCAT('SKU-', id)"))
        with pytest.raises(sa.exc.IntegrityError), conn.begin_nested():
            conn.execute(sa.text("UPDATE mig_products SET sku = 'same'"))

    # migration 2: drop a column and the index again, rename the table
    with engine.begin() as conn:
        op = Operations(MigrationContext.configure(conn))
        op.drop_index("ix_products_sku", table_name="mig_products")
        op.drop_column("mig_products", "sku")
    columns = {c["name"] for c in sa.inspect(engine).get_columns("mig_products")}
    assert "sku" not in columns and "label" in columns

    # the ORM still works against the migrated table through a reflected model
    meta = sa.MetaData()
    products = sa.Table("mig_products", meta, autoload_with=engine)
    with engine.begin() as conn:
        shop_id = conn.execute(sa.text("SELECT id FROM mig_shops")).scalar_one()
        conn.execute(products.insert().values(shop_id=shop_id, label="nib", price=1.25))
        total = conn.execute(sa.select(sa.func.count()).select_from(products)).scalar_one()
        assert total == 3
        cheap = conn.execute(sa.select(products.c.label).where(products.c.price < 2)).scalars().all()
        assert cheap == ["nib"]
    Base.metadata.drop_all(engine)
    engine.dispose()
