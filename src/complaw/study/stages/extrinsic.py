"""Registration point of the `extrinsic` evaluation stage (zero-shot accuracy with lm-eval).
Nothing is registered here yet; a spec with `evaluations.extrinsic` fails with an error naming
this module. To plug complaw.evaluate.extrinsic in, register

    register(Stage(
        name="extrinsic", slot="eval", produces="record",
        inputs=("model", "compress", "recover"),
        run=run,                      # ctx.config: complaw.study.config.Extrinsic (tasks, limit,
                                      # options); ctx.source: what to load (load_subject);
                                      # return new_record("evaluate", ctx.chain) with metrics
                                      # {"metric": "accuracy", "dataset": task, "value": ...}
        resolve_options=...,          # options -> the extrinsic config's resolved dict
    ))
"""
