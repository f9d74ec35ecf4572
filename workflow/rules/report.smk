# Figures that combine stages, comparisons of settings that differ in one switch, and
# results/summary.md. `snakemake --report report.html` collects every report() figure.
from trainmap.figures.summary import (
    comparison_figures,
    comparison_pairs,
    figure_paths,
    function_space_paths,
    page_paths,
    probed_settings,
    setting_paths,
)
from trainmap.io.biases import bias_free_settings

COMPARISONS = comparison_pairs(SETTINGS)


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
        features=setting_value(SETTINGS, "features"),
        convergence=setting_value(SETTINGS, "convergence"),
        code=script_code("plot_state_trajectories.py"),
    script:
        "../scripts/plot_state_trajectories.py"


rule plot_interactive_curves:
    input:
        trajectories="results/{setting}/trajectories.parquet",
        states="results/{setting}/states.parquet",
        map="results/{setting}/map.json",
    output:
        report(
            "results/{setting}/curves.html",
            caption="../report/curves_html.rst",
            category="{setting}",
            subcategory="trajectories",
        ),
    log:
        "logs/{setting}/plot_interactive_curves.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        setting="{setting}",
        features=setting_value(SETTINGS, "features"),
        convergence=setting_value(SETTINGS, "convergence"),
        code=script_code("plot_interactive_curves.py"),
    script:
        "../scripts/plot_interactive_curves.py"


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
        pairs=COMPARISONS,  # the script picks its pair by the wildcards
        code=script_code("compare_settings.py"),
    script:
        "../scripts/compare_settings.py"


rule summarize_settings:
    input:
        maps=setting_paths(SETTINGS, "map.json"),
        detours=setting_paths(SETTINGS, "detours.csv"),
        regressions=setting_paths(SETTINGS, "regression.json"),
        selections=setting_paths(SETTINGS, "hmm/selection.json"),
        figures=figure_paths(SETTINGS),
        pages=page_paths(SETTINGS),
        function_space=function_space_paths(SETTINGS),
        comparisons=comparison_figures(COMPARISONS),
    output:
        "results/summary.md",
    log:
        "logs/summarize_settings.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        settings=sorted(SETTINGS),
        probed=probed_settings(SETTINGS),
        bias_free=bias_free_settings(SETTINGS),
        pairs=COMPARISONS,
        code=script_code("summarize_settings.py"),
    script:
        "../scripts/summarize_settings.py"
