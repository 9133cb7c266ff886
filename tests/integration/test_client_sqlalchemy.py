"""SQLAlchemy ORM and Core against a real node process, through mysqlclient and PyMySQL.

What an ORM application does on its first day: ``metadata.create_all`` (which first asks whether each
table exists), reflection, inserts of related objects in one flush, lazy and eager relationship
loading, updates and deletes in a unit of work, rollbacks, and ``drop_all``. Both DBAPI drivers run the
same scenario; they differ in how they escape bytes (mysqlclient: raw bytes in a quoted string, PyMySQL:
``X'..'`` hex literals), so the binary round trip is a separate test.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

sa = pytest.importorskip("sqlalchemy", reason="SQLAlchemy is not installed")
from sqlalchemy import (  # noqa: E402
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    LargeBinary,
    Numeric,
    String,
    Text,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError, ProgrammingError  # noqa: E402
from sqlalchemy.orm import (  # noqa: E402
    DeclarativeBase,
    Mapped,
    Session,
    joinedload,
    mapped_column,
    relationship,
    selectinload,
)

DRIVERS = [
    pytest.param(("mysql+mysqldb", "MySQLdb"), id="mysqlclient"),
    pytest.param(("mysql+pymysql", "pymysql"), id="pymysql"),
]


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "sa_authors"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    born: Mapped[dt.date | None] = mapped_column(Date)
    books: Mapped[list[Book]] = relationship(
        back_populates="author", cascade="all, delete-orphan", order_by="Book.id"
    )


class Book(Base):
    __tablename__ = "sa_books"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("sa_authors.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    blurb: Mapped[str | None] = mapped_column(Text)
    cover: Mapped[bytes | None] = mapped_column(LargeBinary)
    price: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    rating: Mapped[float | None] = mapped_column(Float)
    added: Mapped[dt.datetime | None] = mapped_column(DateTime)
    author: Mapped[Author] = relationship(back_populates="books")


def make_engine(node, dialect: str, module: str):
    pytest.importorskip(module, reason=f"{module} is not installed")
    return sa.create_engine(
        f"{dialect}://root:@127.0.0.1:{node.mysql_port}/marmot?charset=utf8mb4",
        pool_size=2,
        max_overflow=0,
        pool_timeout=5,
    )


@pytest.fixture(params=DRIVERS)
def engine(request, node):
    e = make_engine(node, *request.param)
    Base.metadata.drop_all(e)
    yield e
    Base.metadata.drop_all(e)
    e.dispose()


TITLES = ["it's", 'say "hi"', "back\\slash", "\\n", "trail\\", "é中文🦫", ""]


def test_orm_round_trip(engine):
    Base.metadata.create_all(engine)
    Base.metadata.create_all(engine)  # checkfirst: a second run sees the tables and creates nothing
    with Session(engine) as s:
        ann = Author(name="Ann 'the' \\Author\\ 🦫", born=dt.date(1970, 1, 1))
        ann.books = [
            Book(
                title=t,
                blurb=None if i % 2 else f"blurb {t}",
                cover=b"\x00\x01'\\" if i == 0 else None,
                price=Decimal("12.34") if i == 0 else Decimal("-0.05"),
                rating=4.5 if i == 0 else -0.1,
                added=dt.datetime(2024, 1, 2, 3, 4, 5),
            )
            for i, t in enumerate(TITLES)
        ]
        bob = Author(name="Bob", born=None, books=[Book(title="solo", blurb="", price=None)])
        s.add_all([ann, bob])
        s.commit()
        ann_id, bob_id = ann.id, bob.id
        book_ids = [b.id for b in ann.books]
    assert ann_id > 0 and bob_id > ann_id and len(set(book_ids)) == len(TITLES)

    with Session(engine) as s:
        # lazy loading, filter with quotes/backslashes in the parameters
        ann = s.scalars(select(Author).where(Author.name == "Ann 'the' \\Author\\ 🦫")).one()
        assert ann.id == ann_id and ann.born == dt.date(1970, 1, 1)
        assert [b.title for b in ann.books] == TITLES
        first = ann.books[0]
        assert (first.blurb, first.cover, first.price, first.rating, first.added) == (
            "blurb it's",
            b"\x00\x01'\\",
            Decimal("12.34"),
            4.5,
            dt.datetime(2024, 1, 2, 3, 4, 5),
        )
        assert ann.books[1].blurb is None and ann.books[1].cover is None
        for t in TITLES:
            assert s.scalars(select(Book.title).where(Book.title == t)).all() == [t]
        # eager loading: a JOIN and a second SELECT ... IN
        authors = (
            s.scalars(select(Author).options(joinedload(Author.books)).order_by(Author.id)).unique().all()
        )
        assert [(a.name[:3], len(a.books)) for a in authors] == [("Ann", len(TITLES)), ("Bob", 1)]
        s.expunge_all()
        authors = s.scalars(select(Author).options(selectinload(Author.books)).order_by(Author.id)).all()
        assert [b.title for b in authors[1].books] == ["solo"]
        # aggregates and a join condition
        rows = s.execute(
            select(Author.name, func.count(Book.id))
            .join(Author.books)
            .group_by(Author.name)
            .order_by(Author.name)
        ).all()
        assert [(n[:3], c) for n, c in rows] == [("Ann", len(TITLES)), ("Bob", 1)]

    with Session(engine) as s:
        # update through the unit of work, then a bulk UPDATE; an error rolls the session back
        bob = s.get(Author, bob_id)
        bob.name = "Robert"
        bob.books[0].title = "renamed \\ 'again'"
        s.commit()
        assert s.execute(sa.update(Book).where(Book.author_id == ann_id).values(rating=1.0)).rowcount == len(
            TITLES
        )
        s.commit()
        s.add(Author(name="Robert"))  # unique name
        with pytest.raises(IntegrityError) as ei:
            s.commit()
        assert ei.value.orig.args[0] == 1062
        s.rollback()
        assert s.get(Author, bob_id).books[0].title == "renamed \\ 'again'"
        assert s.scalar(select(func.sum(Book.rating)).where(Book.author_id == ann_id)) == len(TITLES)
        # delete with cascade to the children
        s.delete(s.get(Author, ann_id))
        s.commit()
        assert s.scalar(select(func.count()).select_from(Book)) == 1
        assert s.scalars(select(Author.name)).all() == ["Robert"]


def test_reflection(engine):
    Base.metadata.create_all(engine)
    insp = inspect(engine)
    tables = insp.get_table_names()
    assert {"sa_authors", "sa_books"} <= set(tables)
    assert insp.has_table("sa_books") and not insp.has_table("sa_nope")
    cols = {c["name"]: c for c in insp.get_columns("sa_books")}
    assert list(cols) == ["id", "author_id", "title", "blurb", "cover", "price", "rating", "added"]
    assert cols["id"]["nullable"] is False and cols["id"]["autoincrement"] is True
    assert cols["title"]["nullable"] is False and cols["blurb"]["nullable"] is True
    kinds = {name: type(c["type"]).__name__ for name, c in cols.items()}
    assert kinds == {
        "id": "BIGINT",
        "author_id": "BIGINT",
        "title": "VARCHAR",
        "blurb": "TEXT",
        "cover": "BLOB",
        "price": "DECIMAL",
        "rating": "FLOAT",
        "added": "DATETIME",
    }
    assert cols["title"]["type"].length == 200
    assert (cols["price"]["type"].precision, cols["price"]["type"].scale) == (10, 2)
    assert insp.get_pk_constraint("sa_books")["constrained_columns"] == ["id"]
    fks = insp.get_foreign_keys("sa_books")
    assert [(f["constrained_columns"], f["referred_table"], f["referred_columns"]) for f in fks] == [
        (["author_id"], "sa_authors", ["id"])
    ]
    assert [i["column_names"] for i in insp.get_indexes("sa_books")] == [["author_id"]]
    assert [u["column_names"] for u in insp.get_unique_constraints("sa_authors")] == [["name"]]
    # Reflect the whole schema into fresh metadata and use it.
    meta = sa.MetaData()
    meta.reflect(engine, only=["sa_authors", "sa_books"])
    books = meta.tables["sa_books"]
    with engine.begin() as conn:
        author_id = conn.execute(meta.tables["sa_authors"].insert().values(name="R")).inserted_primary_key[0]
        conn.execute(books.insert().values(author_id=author_id, title="reflected"))
        assert conn.execute(select(books.c.title)).scalars().all() == ["reflected"]
    Base.metadata.drop_all(engine)
    left = inspect(engine).get_table_names()
    assert "sa_authors" not in left and "sa_books" not in left


def test_core_text_and_transactions(engine):
    Base.metadata.create_all(engine)
    with engine.connect() as conn:
        conn.execute(text("INSERT INTO sa_authors (name) VALUES (:n)"), [{"n": "x'1"}, {"n": "x\\2"}])
        conn.rollback()
        assert conn.execute(text("SELECT COUNT(*) FROM sa_authors")).scalar() == 0
        result = conn.execute(
            text("INSERT INTO sa_authors (name, born) VALUES (:n, :b)"),
            {"n": "é中文🦫", "b": dt.date(2000, 2, 29)},
        )
        assert result.rowcount == 1 and result.lastrowid > 0
        conn.commit()
        row = conn.execute(
            text("SELECT id, name, born FROM sa_authors WHERE name = :n"), {"n": "é中文🦫"}
        ).one()
        assert tuple(row) == (result.lastrowid, "é中文🦫", dt.date(2000, 2, 29))
        with pytest.raises(ProgrammingError) as ei:
            conn.execute(text("SELEC 1"))
        assert ei.value.orig.args[0] == 1064
        conn.rollback()
        assert conn.execute(text("SELECT 1")).scalar() == 1


def test_like_backslash_escape(engine):
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add(Author(name="like", books=[Book(title=t) for t in ("a\\b", "a%b", "a_b", "axb")]))
        s.commit()
        titles = lambda pattern: s.scalars(  # noqa: E731
            select(Book.title).where(Book.title.like(pattern)).order_by(Book.id)
        ).all()
        assert titles("%\\\\%") == ["a\\b"]  # pattern %\\% : one literal backslash
        assert titles("a\\%b") == ["a%b"]
        assert titles("a\\_b") == ["a_b"]
        assert s.scalars(select(Book.title).where(Book.title.contains("%", autoescape=True))).all() == ["a%b"]


def test_binary_not_utf8(engine):
    """mysqlclient splices the raw bytes into a quoted string, PyMySQL sends an X'..' literal."""
    raw = b"\x00\xff\xfe\x80\xc3\x28'\\"
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add(Author(name="bin", books=[Book(title="raw", cover=raw)]))
        s.commit()
    with Session(engine) as s:
        assert s.scalars(select(Book.cover)).all() == [raw]
        assert s.scalars(select(Book.title).where(Book.cover == raw)).all() == ["raw"]
