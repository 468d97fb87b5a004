using JestMesh.Client;
using JestMesh.TestKit;
using JestMesh.Tls;
using Microsoft.Extensions.Options;

namespace JestMesh.Selection.Tests;

/// <summary>Bad TLS settings stop Selection at start (before any broker is reached) naming the setting.</summary>
[Trait("Tier", "Unit")]
public sealed class TlsSettingsTests
{
    private static async Task<string> StartFailureAsync(Dictionary<string, string?> tls)
    {
        var settings = new Dictionary<string, string?>
        {
            // Nothing listens there: validation must fail before anything connects.
            ["Messaging:Uri"] = "amqp://guest:guest@127.0.0.1:1/",
            ["Selection:ApiKey"] = SelectionHost.ApiKey,
        };
        foreach (var (key, value) in tls)
        {
            settings[key] = value;
        }
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() =>
            ServiceHosts.StartAsync("JestMesh.Selection", settings, b => b.AddSelectionServices(), a => a.MapSelection()))
            .Within(TimeSpan.FromSeconds(60), "Selection to refuse its settings");
        return error.Message;
    }

    [Fact]
    public async Task A_missing_client_CA_file_names_Selection_Tls_CaFile()
    {
        var message = await StartFailureAsync(new() { ["Selection:Tls:CaFile"] = "/nonexistent/ca.crt" });
        Assert.Contains("Selection:Tls:CaFile: '/nonexistent/ca.crt' does not exist.", message, StringComparison.Ordinal);
        // Client certificates without a serving certificate cannot work either, and it says so.
        Assert.Contains("Selection:Tls:CaFile: asks callers for client certificates, which needs TLS", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_certificate_without_its_key_and_a_CA_file_without_certificates_are_named()
    {
        var notPem = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(notPem, "not a certificate\n");
            var message = await StartFailureAsync(new()
            {
                ["Selection:Tls:CertificateFile"] = notPem,
                ["Selection:Tls:CaFile"] = notPem,
            });
            Assert.Contains("Selection:Tls:KeyFile: must name the PEM private key of CertificateFile.", message, StringComparison.Ordinal);
            Assert.Contains($"Selection:Tls:CaFile: '{notPem}' holds no PEM certificate", message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(notPem);
        }
    }

    [Fact]
    public void Tls_settings_with_an_http_address_are_refused_by_the_channel()
    {
        var error = Assert.Throws<ArgumentException>(() => CurateChannel.Create("http://127.0.0.1:1", new SocketsHttpHandler(),
            tls: new TlsOptions { CaFile = "/nonexistent/ca.crt" }, section: "Trainer"));
        Assert.StartsWith("Trainer:Tls is set but the address 'http://127.0.0.1:1' is not https://", error.Message, StringComparison.Ordinal);
    }
}
