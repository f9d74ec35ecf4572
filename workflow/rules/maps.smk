# The training map of each setting (METHOD.md section 5): map.json and map.png.


rule draw_training_map:
    input:
        model="results/{setting}/hmm/selected.json",
        sequences="results/{setting}/hmm/sequences.parquet",
        prepare="results/{setting}/hmm/prepare.json",  # runs left out, notes
        states="results/{setting}/states.parquet",
        runs="results/{setting}/convergence.parquet",
        detours="results/{setting}/detours.csv",
        regression="results/{setting}/regression.json",
        support=get_support,  # stability.resamples > 0: support.json
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
        candidates=get_candidates,
        code=script_code("draw_training_map.py"),
    script:
        "../scripts/draw_training_map.py"


rule draw_interactive_map:
    input:
        model="results/{setting}/hmm/selected.json",
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


# Function space (settings with probe:): PCA of every checkpoint's losses on the probe set,
# fit before the HMM (pc1, pc2, ... may be features; pca/ survives collect_trajectories's
# removal of stale results, trainmap.io.stale), then joined to the decoded states.
rule fit_function_space:
    input:
        get_probe_losses,
    output:
        coords="results/{setting}/pca/coords.parquet",
        summary="results/{setting}/pca/summary.json",
    log:
        "logs/{setting}/fit_function_space.log",
    wildcard_constraints:
        setting=probe_settings_pattern(),
    conda:
        "../../envs/analysis.yaml"
    params:
        components=setting_value(SETTINGS, "probe", "components"),
        table_digest=get_input_digest,
        code=script_code("fit_function_space.py"),
    script:
        "../scripts/fit_function_space.py"


rule map_function_space:
    input:
        coords="results/{setting}/pca/coords.parquet",
        pca="results/{setting}/pca/summary.json",
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
        code=script_code("map_function_space.py"),
    script:
        "../scripts/map_function_space.py"
