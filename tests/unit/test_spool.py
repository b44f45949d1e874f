"""The spool a family's driver fills for a member while the member reads it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tap_braze_series.spool import Spool


@pytest.fixture
def spool() -> Iterator[Spool]:
    spool = Spool()
    yield spool
    spool.close()  # also when a test fails: no open file left to warn about


def rows(partition: int, n: int, start: int = 0) -> list[dict]:
    return [{"partition": partition, "n": i} for i in range(start, start + n)]


def test_a_member_reads_a_partition_while_the_driver_writes_the_next(spool: Spool):
    spool.write(0, rows(0, 3))
    spool.write(0, rows(0, 2, start=3))
    assert spool.backlog() == 0  # rows of a partition that has not ended wait
    spool.end(0)
    assert spool.backlog() == 5
    reading = spool.read(0)
    assert [next(reading), next(reading)] == rows(0, 2)
    assert spool.backlog() == 3
    # The driver appends while the member is in the middle of partition 0.
    spool.write(1, rows(1, 4))
    assert list(reading) == rows(0, 3, start=2)
    assert spool.backlog() == 0
    spool.write(1, rows(1, 1, start=4))
    spool.end(1)
    assert spool.backlog() == 5
    assert list(spool.read(1)) == rows(1, 5)
    assert spool.backlog() == 0


def test_rows_of_a_partition_the_member_skips_leave_no_backlog(spool: Spool):
    spool.write(0, rows(0, 2))
    spool.end(0)
    spool.end(1)  # a partition without rows for this member
    spool.write(2, rows(2, 3))
    spool.end(2)
    assert spool.backlog() == 5
    assert list(spool.read(2)) == rows(2, 3)
    assert spool.backlog() == 0


def test_the_file_is_emptied_once_the_member_has_read_all_of_it(spool: Spool):
    spool.write(0, rows(0, 50))
    spool.end(0)
    one_partition = spool.size()
    assert list(spool.read(0)) == rows(0, 50)
    for partition in range(1, 20):
        spool.write(partition, rows(partition, 50))
        spool.end(partition)
        assert spool.size() <= one_partition + 16  # not 20 partitions' worth
        assert list(spool.read(partition)) == rows(partition, 50)
    assert spool.backlog() == 0


def test_a_read_in_progress_goes_on_into_rows_written_after_the_file_was_emptied(spool: Spool):
    spool.write(0, rows(0, 3))
    spool.end(0)
    reading = spool.read(0)
    assert list(reading) == rows(0, 3)
    spool.write(1, rows(1, 2))  # everything was read: the file starts again here
    reading = spool.read(1)
    assert next(reading) == rows(1, 1)[0]
    spool.write(1, rows(1, 2, start=2))  # not all read yet (the batch was): emptied again
    spool.write(1, rows(1, 1, start=4))  # unread rows remain: appended
    spool.end(1)
    assert list(reading) == rows(1, 4, start=1)
    assert spool.backlog() == 0


def test_a_member_advanced_to_its_last_row_lets_the_next_write_empty_the_file(spool: Spool):
    # As Family.follow advances a member: up to the backlog's last row, no further.
    def member_reads() -> Iterator[dict]:
        for partition in range(10):
            yield from spool.read(partition)

    member = member_reads()
    read: list[dict] = []
    sizes = []
    for partition in range(10):
        spool.write(partition, rows(partition, 30))
        spool.write(partition, rows(partition, 30, start=30))
        spool.end(partition)
        sizes.append(spool.size())
        while spool.backlog() > 0:
            read.append(next(member))
    assert read == [row for partition in range(10) for row in rows(partition, 60)]
    assert max(sizes) == sizes[0]  # each partition's rows replace the last one's
    assert list(member) == []
