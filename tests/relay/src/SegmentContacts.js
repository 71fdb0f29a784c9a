// A saved segment's members in a Relay pagination fragment (tests/test_relay.py).
import {graphql} from 'react-relay';

export const segmentContacts = graphql`
  fragment SegmentContacts_segment on Segment
  @argumentDefinitions(count: {type: "Int", defaultValue: 2}, cursor: {type: "String"}) {
    name
    createdAt
    contacts(first: $count, after: $cursor) @connection(key: "SegmentContacts_contacts") {
      edges { node { id email } }
    }
  }
`;

export const segmentQuery = graphql`
  query SegmentContactsQuery($id: ID!) {
    segment(id: $id) { ...SegmentContacts_segment }
  }
`;
