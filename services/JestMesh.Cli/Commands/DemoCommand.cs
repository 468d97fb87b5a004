using System.CommandLine;
using JestMesh.Cli.Demo;
using Spectre.Console;

namespace JestMesh.Cli.Commands;

/// <summary><c>./jestmesh demo</c>: the local pipeline and the JEST experiment end to end, with a report.</summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var quick = new Option<bool>("--quick") { Description = "A short demo (T = 200 steps, ≤ 5 min on 2 cores) instead of the full one (T = 1,500, ≤ 30 min)." };
        var output = new Option<string>("--out") { Description = "Directory for report.md, results.json, the plots and the logs.", DefaultValueFactory = _ => "runs/demo" };
        var f05 = new Option<bool>("--f05") { Description = "Also run every curating policy at filter ratio f = 0.5." };
        var otlp = new Option<Uri?>("--otlp-endpoint") { Description = "Also send the services' traces and metrics to this OpenTelemetry collector (OTLP/HTTP, e.g. http://127.0.0.1:4318)." };
        var reference = new Option<string?>("--reference") { Description = "Reference checkpoint directory: reused when its SHA-256 and data settings match, trained there otherwise (default .jestmesh/reference)." };
        var steps = new Option<int?>("--steps") { Description = "Learner steps per run (overrides the mode's default)." };
        var evalEvery = new Option<int?>("--eval-every") { Description = "Steps between evaluations (overrides the mode's default)." };
        var inproc = new Option<bool>("--inproc") { Description = "Run the learner loop in-process instead of through the services (labelled so in the report)." };
        var command = new Command("demo", "Start a private broker and the services on loopback, run every policy through the pipeline, write the report.");
        foreach (var o in new Option[] { quick, output, f05, otlp, reference, steps, evalEvery, inproc })
        {
            command.Options.Add(o);
        }

        command.SetAction(async (parse, cancellationToken) =>
        {
            try
            {
                if (parse.GetValue(otlp) is { } endpoint && (!endpoint.IsAbsoluteUri || endpoint.Scheme is not ("http" or "https")))
                {
                    throw new ArgumentException($"--otlp-endpoint '{endpoint}' must be an absolute http:// or https:// OTLP/HTTP address.");
                }

                var plan = DemoPlan.Create(parse.GetValue(quick), parse.GetValue(f05), parse.GetValue(steps), parse.GetValue(evalEvery));
                if (parse.GetValue(inproc))
                {
                    // `train --inproc` always evaluates on the whole test set.
                    plan = plan with { EvalLimit = 0 };
                }

                var options = new DemoOptions
                {
                    Plan = plan,
                    Out = parse.GetValue(output)!,
                    OtlpEndpoint = parse.GetValue(otlp),
                    Reference = parse.GetValue(reference),
                    InProcess = parse.GetValue(inproc),
                };
                await using var runner = new DemoRunner(options, Repo.Locate());
                return await runner.RunAsync(cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                AnsiConsole.MarkupLine("[yellow]demo: cancelled; everything it started was stopped.[/]");
                return 130;
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or InvalidDataException or TimeoutException or IOException)
            {
                AnsiConsole.MarkupLine($"[red]demo: {Markup.Escape(e.Message)}[/]");
                return 1;
            }
        });
        return command;
    }
}
