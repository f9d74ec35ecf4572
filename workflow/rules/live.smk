# The live map (docs/live.md): live.json beside every map, and with `live:` its k-fold
# evaluation against the baselines.


rule write_live_map:
    input:
        model="results/{setting}/hmm/selected.json",
        prepare="results/{setting}/hmm/prepare.json",  # the global means and SDs
        map="results/{setting}/map.json",
        states="results/{setting}/states.parquet",
        runs="results/{setting}/convergence.parquet",
    output:
        "results/{setting}/live.json",
    log:
        "logs/{setting}/write_live_map.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        setting="{setting}",
        convergence=setting_value(SETTINGS, "convergence"),
        code=script_code("write_live_map.py"),
    script:
        "../scripts/write_live_map.py"


rule evaluate_live_map:
    input:
        trajectories="results/{setting}/trajectories.parquet",
        selection="results/{setting}/hmm/selection.json",
    output:
        evaluation="results/{setting}/live/evaluation.json",
        figure=report(
            "results/{setting}/live/evaluation.png",
            caption="../report/live_evaluation.rst",
            category="{setting}",
            subcategory="live map",
        ),
    log:
        "logs/{setting}/evaluate_live_map.log",
    wildcard_constraints:
        setting=live_settings_pattern(),
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    params:
        setting=get_live_setting,
        fractions=setting_value(SETTINGS, "live", "fractions"),
        code=script_code("evaluate_live_map.py"),
    script:
        "../scripts/evaluate_live_map.py"
