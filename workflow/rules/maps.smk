# The training map of each setting (METHOD.md section 5): map.json and map.png.


rule draw_training_map:
    input:
        models=get_hmm_fits,  # hmm.smk: every candidate K; the script reads the selected one
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
        code=script_code("draw_training_map.py"),
    script:
        "../scripts/draw_training_map.py"


rule draw_interactive_map:
    input:
        models=get_hmm_fits,  # the script reads the one map.json was drawn from
        map="results/{setting}/map.json",
        states="results/{setting}/states.parquet",
        runs="results/{setting}/convergence.parquet",
        detours="results/{setting}/detours.csv",
    output:
        report(
            "results/{setting}/map.html",
            caption="../report/map_html.rst",
            category="{setting}",
            subcategory="training map",
        ),
    log:
        "logs/{setting}/draw_interactive_map.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        setting="{setting}",
        code=script_code("draw_interactive_map.py"),
    script:
        "../scripts/draw_interactive_map.py"


# Function space (settings with probe:): PCA of every checkpoint's losses on the probe set.
rule map_function_space:
    input:
        losses=get_probe_losses,
        states="results/{setting}/states.parquet",
        map="results/{setting}/map.json",
        detours="results/{setting}/detours.csv",
    output:
        table="results/{setting}/function_space.parquet",
        summary="results/{setting}/function_space.json",
        figure=report(
            "results/{setting}/function_space.png",
            caption="../report/function_space.rst",
            category="{setting}",
            subcategory="function space",
        ),
        page=report(
            "results/{setting}/function_space.html",
            caption="../report/function_space.rst",
            category="{setting}",
            subcategory="function space",
        ),
    log:
        "logs/{setting}/map_function_space.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        setting="{setting}",
        components=get_probe_components,
        code=script_code("map_function_space.py"),
    script:
        "../scripts/map_function_space.py"
