mod input;
mod output;
mod targets;
