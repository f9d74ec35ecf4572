# Figures that combine stages, comparisons of settings that differ in one switch, and
# results/summary.md. `snakemake --report report.html` collects every report() figure.
from trainmap.summary import comparison_pairs

SETTING_FIGURES = ["map", "trajectories", "convergence", "coefficients"]


def get_comparison_pairs():
    return comparison_pairs(SETTINGS)


def get_comparison(wildcards):
    (pair,) = [
        p
        for p in get_comparison_pairs()
        if (p["a"], p["b"]) == (wildcards.a, wildcards.b)
    ]
    return pair


def comparison_figures():
    return [
        f"results/comparisons/{p['a']}--{p['b']}.png" for p in get_comparison_pairs()
    ]


def setting_files(file):
    return expand("results/{setting}/{file}", setting=sorted(SETTINGS), file=file)


def setting_figures():
    return expand(
        "results/{setting}/{figure}.png",
        setting=sorted(SETTINGS),
        figure=SETTING_FIGURES,
    )


rule plot_state_trajectories:
    input:
        trajectories="results/{setting}/trajectories.parquet",
        states="results/{setting}/states.parquet",
        map="results/{setting}/map.json",
    output:
        report(
            "results/{setting}/trajectories.png",
            caption="../report/trajectories.rst",
            category="{setting}",
            subcategory="trajectories",
        ),
    log:
        "logs/{setting}/plot_state_trajectories.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        setting="{setting}",
        features=get_features,
        convergence=get_convergence,
        code=code_version("plots.py", "summary.py"),
    script:
        "../scripts/plot_state_trajectories.py"


rule compare_settings:
    input:
        map_a="results/{a}/map.json",
        detours_a="results/{a}/detours.csv",
        regression_a="results/{a}/regression.json",
        runs_a="results/{a}/convergence.parquet",
        map_b="results/{b}/map.json",
        detours_b="results/{b}/detours.csv",
        regression_b="results/{b}/regression.json",
        runs_b="results/{b}/convergence.parquet",
    output:
        report(
            "results/comparisons/{a}--{b}.png",
            caption="../report/comparison.rst",
            category="comparisons",
        ),
    log:
        "logs/compare_settings/{a}--{b}.log",
    wildcard_constraints:
        a="[a-z0-9_]+",
        b="[a-z0-9_]+",
    conda:
        "../../envs/analysis.yaml"
    params:
        pair=get_comparison,
        code=code_version("plots.py", "summary.py"),
    script:
        "../scripts/compare_settings.py"


rule summarize_settings:
    input:
        maps=setting_files("map.json"),
        detours=setting_files("detours.csv"),
        regressions=setting_files("regression.json"),
        figures=setting_figures(),
        comparisons=comparison_figures(),
    output:
        "results/summary.md",
    log:
        "logs/summarize_settings.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        settings=sorted(SETTINGS),
        pairs=get_comparison_pairs(),
        code=code_version("summary.py"),
    script:
        "../scripts/summarize_settings.py"
