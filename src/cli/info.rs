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
    let model = args.engine.load_model()?;
    let c = &model.config;
    let state = c.state_floats_per_layer();
    println!("model              {}", model.source);
    println!("weights dtype      {}", model.weights.dtype);
    println!("parameters         {}", model.weights.parameter_count(c));
    println!("layers             {}", c.num_hidden_layers);
    println!("d_model            {}", c.hidden_size);
    println!("d_inner            {}", c.intermediate_size);
    println!("d_state            {}", c.state_size);
    println!("d_conv             {}", c.conv_kernel);
    println!("dt_rank            {}", c.time_step_rank);
    println!("vocab_size         {}", c.vocab_size);
    println!("prepend_bos        {}", c.prepend_bos);
    let tokens: Vec<String> = c.tokens.iter().map(|(b, t)| format!("{b}={t}")).collect();
    println!("tokens             {}", tokens.join(" "));
    println!(
        "state per layer    {} floats ({} conv + {} ssm), {} bytes f32; {} bytes for all layers",
        state,
        c.intermediate_size * (c.conv_kernel - 1),
        c.intermediate_size * c.state_size,
        state * 4,
        state * 4 * c.num_hidden_layers
    );
    Ok(())
}
