rule build_structure:
    output:
        xyz=f"{RESULTS}/structures/{{system}}.xyz",
        json=f"{RESULTS}/structures/{{system}}.json",
    log:
        f"{RESULTS}/logs/build_structure/{{system}}.log",
    localrule: True
    conda:
        "../../envs/structures.yaml"
    params:
        settings=lambda wc: config_settings(
            "structure.lattice_A",
            "structure.vacuum_A",
            **{
                "systems[].size": list(system_of(wc).size),
                "systems[].shell_layers": system_of(wc).shell_layers,
                "systems[].shell_metal": system_of(wc).shell_metal,
            },
        ),
    shell:
        "python -m qdphonon build --settings-json {params.settings:q} --out {output.xyz:q} > {log:q} 2>&1"
