"""The spool a family's driver fills for a member while the member reads it."""

from __future__ import annotations

from tap_braze_series.feed import Spool


def rows(partition: int, n: int, start: int = 0) -> list[dict]:
    return [{"partition": partition, "n": i} for i in range(start, start + n)]


def test_a_member_reads_a_partition_while_the_driver_writes_the_next():
    spool = Spool()
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
    spool.close()


def test_rows_of_a_partition_the_member_skips_leave_no_backlog():
    spool = Spool()
    spool.write(0, rows(0, 2))
    spool.end(0)
    spool.end(1)  # a partition without rows for this member
    spool.write(2, rows(2, 3))
    spool.end(2)
    assert spool.backlog() == 5
    assert list(spool.read(2)) == rows(2, 3)
    assert spool.backlog() == 0
    spool.close()
