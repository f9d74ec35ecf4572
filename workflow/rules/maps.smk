# The training map of each setting (METHOD.md section 5): map.json and map.png.


def get_hmm_models(wildcards):
    """Every candidate model of the setting; the script reads the one selection.json names."""
    return expand(
        "results/{setting}/hmm/k{k}.json",
        setting=wildcards.setting,
        k=get_hmm_options(wildcards)["states"],
    )


rule draw_training_map:
    input:
        models=get_hmm_models,
        selection="results/{setting}/hmm/selection.json",
        sequences="results/{setting}/hmm/sequences.parquet",
        states="results/{setting}/states.parquet",
        runs="results/{setting}/convergence.parquet",
        detours="results/{setting}/detours.csv",
        regression="results/{setting}/regression.json",
    output:
        map="results/{setting}/map.json",
        figure=report(
            "results/{setting}/map.png",
            caption="../report/map.rst",
            category="{setting}",
            subcategory="training map",
        ),
    log:
        "logs/{setting}/draw_training_map.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        setting="{setting}",
        code=code_version("maps.py", "filtering.py", "plots.py", "summary.py", "hmm.py"),
    script:
        "../scripts/draw_training_map.py"
