//! `ssmgen info`: describe a model.

use super::EngineArgs;

/// Arguments of `ssmgen info`.
#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    engine: EngineArgs,
}

/// Prints the model's configuration, parameter count and per-layer state size.
pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let model = match args.engine.load_any()? {
        ssmgen::model::AnyModel::Causal(m) => m,
        ssmgen::model::AnyModel::Caduceus(m) => return caduceus(&m),
    };
    let c = &model.config;
    let state = c.state_floats_per_layer();
    println!("model              {}", model.source);
    if c.mamba2.is_some() {
        println!("architecture       mamba2 (causal LM, Mamba-2 / SSD mixers)");
    }
    println!("weights dtype      {}", model.weights.dtype);
    println!("parameters         {}", model.weights.parameter_count(c));
    println!("layers             {}", c.num_hidden_layers);
    println!("d_model            {}", c.hidden_size);
    println!("d_inner            {}", c.intermediate_size);
    println!("d_state            {}", c.state_size);
    println!("d_conv             {}", c.conv_kernel);
    match &c.mamba2 {
        None => println!("dt_rank            {}", c.time_step_rank),
        Some(m) => {
            println!(
                "heads              {} of head_dim {}",
                m.num_heads, m.head_dim
            );
            println!("n_groups           {}", m.n_groups);
            println!(
                "time_step_limit    {} to {}",
                m.time_step_limit.0, m.time_step_limit.1
            );
        }
    }
    println!("vocab_size         {}", c.vocab_size);
    println!("prepend_bos        {}", c.prepend_bos);
    let tokens: Vec<String> = c.tokens.iter().map(|(b, t)| format!("{b}={t}")).collect();
    println!("tokens             {}", tokens.join(" "));
    println!(
        "state per layer    {} floats ({} conv + {} ssm), {} bytes f32; {} bytes for all layers",
        state,
        c.conv_state_floats_per_layer(),
        c.intermediate_size * c.state_size,
        state * 4,
        state * 4 * c.num_hidden_layers
    );
    Ok(())
}

/// `info` for a Caduceus (masked) model.
fn caduceus(model: &ssmgen::model::caduceus::CaduceusModel) -> anyhow::Result<()> {
    let c = &model.config;
    let strategy = match c.strategy {
        ssmgen::model::caduceus::BiStrategy::Add => "add",
        ssmgen::model::caduceus::BiStrategy::Multiply => "ew_multiply",
    };
    println!("model              {}", model.source);
    println!("architecture       caduceus (masked LM, run over windows)");
    println!("weights dtype      {}", model.weights.dtype);
    println!("parameters         {}", model.parameter_count());
    println!("layers             {}", c.n_layer);
    println!("d_model            {}", c.d_model);
    println!("d_inner            {}", c.d_inner);
    println!("d_state            {}", c.d_state);
    println!("d_conv             {}", c.d_conv);
    println!("dt_rank            {}", c.dt_rank);
    println!("vocab_size         {} (padded)", c.vocab_size);
    println!(
        "bidirectional      {} ({strategy}, weight tie {})",
        c.bidirectional, c.weight_tie
    );
    println!("rcps               {}", c.rcps);
    println!("fused_add_norm     {}", c.fused_add_norm);
    match c.window_len {
        Some(w) => println!("window             {w} (from the checkpoint)"),
        None => println!(
            "window             {} (default; the checkpoint does not say)",
            ssmgen::masked::DEFAULT_WINDOW
        ),
    }
    println!("tokens             A=7 C=8 G=9 T=10 N=11 [MASK]=3");
    Ok(())
}

/// `ssmgen models`: the models compiled into the binary.
pub fn models() -> anyhow::Result<()> {
    let model = ssmgen::model::builtin::load()?;
    let c = &model.config;
    println!("name\tarchitecture\tlayers\td_model\tparameters\ttrained on");
    println!(
        "{}\tcausal Mamba-1 (default)\t{}\t{}\t{}\tfour Klebsiella pneumoniae genomes and \
         phage lambda (models/README.md)",
        ssmgen::model::builtin::NAME,
        c.num_hidden_layers,
        c.hidden_size,
        model.weights.parameter_count(c),
    );
    Ok(())
}
