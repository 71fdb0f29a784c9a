// A rule's members, evaluated without saving it, paged by Relay (tests/test_relay.py).
import {graphql} from 'react-relay';

export const previewQuery = graphql`
  query PreviewContactsQuery($rule: RuleInput!, $count: Int, $cursor: String) {
    segmentPreview(rule: $rule) {
      count
      contacts(first: $count, after: $cursor) @connection(key: "PreviewContacts_contacts") {
        edges { node { id email createdAt } }
      }
    }
  }
`;
