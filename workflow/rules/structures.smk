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
        settings=lambda wc: settings_record(
            size=list(system_of(wc).size),
            shell_layers=system_of(wc).shell_layers,
            shell_metal=system_of(wc).shell_metal,
            lattice_A=config["structure"]["lattice_A"],
            vacuum_A=config["structure"]["vacuum_A"],
        ),
    shell:
        "python -m qdphonon build --settings-json {params.settings:q} --out {output.xyz:q} > {log:q} 2>&1"
