"""Registration point of the `recover` stage (LoRA recovery fine-tuning): compressed checkpoint
-> recovered checkpoint. Nothing is registered here yet; a spec with `recovery` fails with an
error naming this module. To plug complaw.recover in, register

    register(Stage(
        name="recover", slot="recovery", produces="checkpoint", inputs=("compress",),
        run=run,                      # ctx.config: complaw.study.config.Recovery (dataset,
                                      # samples, seq_len, seed, options); ctx.source: the
                                      # compressed checkpoint; write ctx.output atomically
        resolve_options=...,          # options -> the recovery config's resolved dict
        check=...,                    # optional: validate an existing recovered checkpoint
    ))

and make its checkpoint loadable by complaw.study.pipeline.load_subject.
"""
