# Convergence time, occupancy and the detour regression of each setting (METHOD.md
# section 6), and its figures.


rule fit_detour_regression:
    input:
        trajectories="results/{setting}/trajectories.parquet",
        states="results/{setting}/states.parquet",
        selection="results/{setting}/hmm/selection.json",
    output:
        detours="results/{setting}/detours.csv",
        regression="results/{setting}/regression.json",
        runs="results/{setting}/convergence.parquet",
    log:
        "logs/{setting}/fit_detour_regression.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        convergence=setting_value(SETTINGS, "convergence"),
        alpha=setting_value(SETTINGS, "alpha"),
        code=script_code("fit_detour_regression.py"),
    script:
        "../scripts/fit_detour_regression.py"


rule plot_detour_regression:
    input:
        detours="results/{setting}/detours.csv",
        regression="results/{setting}/regression.json",
        runs="results/{setting}/convergence.parquet",
        map="results/{setting}/map.json",
    output:
        convergence=report(
            "results/{setting}/convergence.png",
            caption="../report/convergence.rst",
            category="{setting}",
            subcategory="convergence and detours",
        ),
        coefficients=report(
            "results/{setting}/coefficients.png",
            caption="../report/coefficients.rst",
            category="{setting}",
            subcategory="convergence and detours",
        ),
    log:
        "logs/{setting}/plot_detour_regression.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        setting="{setting}",
        code=script_code("plot_detour_regression.py"),
    script:
        "../scripts/plot_detour_regression.py"
