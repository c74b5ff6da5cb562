"""ammpl.results.plots: few-shot curve data and the written PDF / PNG files."""

from __future__ import annotations

from ammpl.results.cli import main as results_main
from ammpl.results.collect import write_runs_csv
from ammpl.results.plots import curve_style, fewshot_panels
from tests.test_results_tables import run

SHOTS = (1, 2, 4, 8, 16)


def curve_runs():
    runs = [run("ZeroshotCLIP", d, accuracy=a) for d, a in (("dtd", 44.0), ("eurosat", 48.0))]
    for trainer, base in (("AMMPL", 50.0), ("MaPLe", 45.0)):
        for dataset, offset in (("dtd", 0.0), ("eurosat", 20.0)):
            for k in SHOTS:
                if trainer == "MaPLe" and dataset == "eurosat" and k == 16:
                    continue  # a hole: MaPLe's 16-shot average point must be left out
                runs += [
                    run(trainer, dataset, s, base + offset + k + s, shots=k) for s in (1, 2, 3)
                ]
    return runs


def test_panel_data_follow_the_average_rule():
    panels, notes = fewshot_panels(curve_runs())
    assert [p.name for p in panels] == ["dtd", "eurosat", "average"]
    dtd = panels[0]
    assert [c.label for c in dtd.curves] == ["MaPLe", "AMMPL"]  # known-method order
    assert dtd.curves[1].shots == list(SHOTS) and dtd.curves[1].means[0] == 53.0
    assert dtd.zero_shot == 44.0 and panels[1].zero_shot == 48.0
    average = panels[2]
    assert average.title == "Average over 2 datasets" and average.bold_title
    assert average.zero_shot == 46.0
    assert average.curves[1].means == [62.0 + k for k in SHOTS]
    assert average.curves[0].shots == [1, 2, 4, 8]
    assert notes == ["average panel: MaPLe at 16 shots left out (1 of 2 datasets)"]


def test_more_than_ten_curves_stay_distinguishable():
    styles = [curve_style(i) for i in range(14)]
    assert styles[0] == {"color": "C0", "linestyle": "-", "marker": "o"}  # CoOp's look
    assert len({tuple(sorted(style.items())) for style in styles}) == 14
    assert styles[10]["color"] == styles[0]["color"] and styles[10]["linestyle"] == "--"


def test_a_long_legend_goes_beside_the_panel():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ammpl.results.plots import LEGEND_INSIDE_MAX, Curve, Panel, draw_panel

    def legend_x(count: int) -> float:
        figure = Figure()
        FigureCanvasAgg(figure)
        ax = figure.add_subplot(1, 1, 1)
        curves = [Curve(f"M{i}", [1, 16], [20.0 + i, 40.0 + i]) for i in range(count)]
        draw_panel(ax, Panel("d", "d", curves, zero_shot=30.0))
        figure.canvas.draw()
        box = ax.get_legend().get_window_extent().transformed(ax.transAxes.inverted())
        return box.x0

    assert legend_x(LEGEND_INSIDE_MAX) < 1.0  # CoOp's look: inside, bottom right
    assert legend_x(LEGEND_INSIDE_MAX + 1) > 1.0


def test_plot_command_writes_pdf_and_png(tmp_path, capsys):
    csv_path = tmp_path / "runs.csv"
    write_runs_csv(curve_runs(), str(csv_path))
    out = tmp_path / "curves"
    args = [
        "plot-fewshot",
        str(csv_path),
        "--out",
        str(out),
        "--error-bars",
        "--methods",
        "AMMPL",
        "ZS-CLIP",
        "--datasets",
        "eurosat",
    ]
    assert results_main(args) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        f"{stem}.{fmt}"
        for stem in ("eurosat", "average", "fewshot_curves")
        for fmt in ("pdf", "png")
    )
    assert (out / "eurosat.pdf").read_bytes().startswith(b"%PDF")
    assert (out / "average.png").read_bytes().startswith(b"\x89PNG")
    assert "6 figure file(s) written" in capsys.readouterr().out
    assert results_main(["plot-fewshot", str(csv_path), "--out", str(out), "--methods", "X"]) == 2
