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
        size=lambda wc: " ".join(map(str, system_of(wc).size)),
        shell_layers=lambda wc: system_of(wc).shell_layers,
        shell_metal=lambda wc: system_of(wc).shell_metal,
        lattice_A=config["structure"]["lattice_A"],
        vacuum_A=config["structure"]["vacuum_A"],
    shell:
        "python -m qdphonon build --size {params.size} --shell-layers {params.shell_layers}"
        " --shell-metal {params.shell_metal} --lattice {params.lattice_A}"
        " --vacuum {params.vacuum_A} --out {output.xyz} > {log} 2>&1"
