src/tmpdir/t.c
