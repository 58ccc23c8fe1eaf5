"""``core.progress``: a tqdm bar that counts, and stays silent when disabled."""



def test_bar_counts_to_its_total_and_prints_its_description(capsys):
    from chamtvm.core.progress import progress_bar

    bar = progress_bar(3, "measuring kernels")
    for _ in range(3):
        bar.update(1)
    assert bar.n == 3 and bar.total == 3
    bar.close()
    err = capsys.readouterr().err
    assert "measuring kernels" in err and "3/3" in err


def test_disabled_bar_prints_nothing(capsys):
    from chamtvm.core.progress import progress_bar

    bar = progress_bar(5, "quiet", enabled=False)
    bar.update(5)
    bar.close()
    assert capsys.readouterr().err == ""
    assert bar.disable is True
