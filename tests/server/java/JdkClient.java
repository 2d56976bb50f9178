// Calls a URL with Java's own HttpClient, as the Restate Java SDK's ingress client does:
// HTTP/2 by default, so on a cleartext URL every request offers an upgrade to h2c.
// Usage: java JdkClient METHOD URL BODY...  (one request per BODY; prints "status body" each)
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

public class JdkClient {
    public static void main(String[] args) throws Exception {
        HttpClient client = HttpClient.newHttpClient();
        for (int i = 2; i < args.length; i++) {
            HttpRequest request = HttpRequest.newBuilder(URI.create(args[1]))
                .header("content-type", "application/json")
                .method(args[0], HttpRequest.BodyPublishers.ofString(args[i]))
                .build();
            HttpResponse<String> response = client.send(request, HttpResponse.BodyHandlers.ofString());
            System.out.println(response.statusCode() + " " + response.body());
        }
    }
}
