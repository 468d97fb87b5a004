using JestMesh.TestKit;

namespace JestMesh.Selection.Tests;

/// <summary>A bad Selection:SessionIdleTimeout stops Selection at start (before any broker is reached), naming the setting.</summary>
[Trait("Tier", "Unit")]
public sealed class SessionIdleTimeoutSettingsTests
{
    [Theory]
    [InlineData("00:00:00", "Selection:SessionIdleTimeout: The field SessionIdleTimeout must be between")]
    [InlineData("8.00:00:00", "Selection:SessionIdleTimeout: The field SessionIdleTimeout must be between")]
    [InlineData("ten minutes", "Selection:SessionIdleTimeout")]
    public async Task A_bad_idle_timeout_stops_the_service_naming_the_setting(string value, string expected)
    {
        var settings = new Dictionary<string, string?>
        {
            // Nothing listens there: validation must fail before anything connects.
            ["Messaging:Uri"] = "amqp://guest:guest@127.0.0.1:1/",
            ["Selection:ApiKey"] = SelectionHost.ApiKey,
            ["Selection:SessionIdleTimeout"] = value,
        };
        var error = await Assert.ThrowsAnyAsync<Exception>(() =>
            ServiceHosts.StartAsync("JestMesh.Selection", settings, b => b.AddSelectionServices(), a => a.MapSelection()))
            .Within(TimeSpan.FromSeconds(60), "Selection to refuse its settings");
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }
}
