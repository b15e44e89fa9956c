"""Registration point of the `speed` evaluation stage (latency, throughput, peak memory).
Nothing is registered here yet; a spec with `evaluations.speed` fails with an error naming this
module. To plug complaw.evaluate.speed in, register

    register(Stage(
        name="speed", slot="eval", produces="record", inputs=("model", "compress", "recover"),
        run=run,                      # ctx.config: complaw.study.config.Speed (device, options);
                                      # return new_record("evaluate", ctx.chain) with metrics
                                      # {"metric": "runtime", "dataset": ..., "value": seconds}
        resolve_options=...,          # options -> the speed config's resolved dict
    ))
"""
